#!/usr/bin/env python3
"""Press-to-action latencies of the appliance on mock pins, through a real local exchange.

1. hook lifted (mock pin driven low) -> the ``answer`` frame arriving at the exchange. Goal
   <= 20 ms.
2. ``invite`` received by the phone's signaling -> the ring LED shown and the ringer started
   (the Leds.show / Sounds.ring calls that carry them). Goal <= 30 ms.
3. start of ``piphone run --config`` (a fresh process) -> READY=1 on a NOTIFY_SOCKET. Goal
   <= 1.5 s.

A second Device (bob) calls the phone (alice) ``--calls`` times; the panel's debounce is in
the path. Run as root; it re-executes itself in a loopback-only network namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "firmware"))

from _common import ensure_isolated_network  # noqa: E402

LOOPBACK = ("127.0.0.1",)
HOOK, RING_LED = 17, 5


def write_config(tmp: Path, url: str, cfg) -> Path:
    (tmp / "piphone.toml").write_text(f"""\
[account]
identity = "alice"
signaling_url = "{url}"
account_sid = "{cfg.account_sid}"
api_key_sid = "{cfg.api_key_sid}"
ice_addresses = ["127.0.0.1"]
[audio]
headset = "none"
[phone]
call_log = ""
""")
    secrets = tmp / "secrets.toml"
    secrets.write_text(f'[account]\napi_key_secret = "{cfg.api_key_secret}"\n')
    os.chmod(secrets, 0o600)
    return tmp / "piphone.toml"


def summary(name: str, values: list[float], goal_ms: float) -> None:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    print(f"{name}: median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, "
          f"max {ms[-1]:.1f} ms over {len(ms)} (goal <= {goal_ms:g} ms)")


async def presses(calls: int, tmp: Path) -> None:
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from piphone.appliance import config as appliance_config
    from piphone.appliance.service import Service
    from piphone.exchange import config as exchange_config
    from piphone.exchange.server import ClientSession, Exchange
    from piphone.voice import Device
    from piphone.voice.tokens import mint

    answers: list[float] = []
    receive = ClientSession._receive

    def tapped(self, text):  # when the exchange gets alice's answer
        if self.identity == "alice" and '"answer"' in text[:40]:
            answers.append(time.perf_counter())
        return receive(self, text)

    ClientSession._receive = tapped
    cfg = replace(exchange_config.load(exchange_config.write_starter(tmp / "exchange.toml")),
                  port=0, ice_addresses=LOOPBACK)
    exchange = Exchange(cfg)
    await exchange.start(host="127.0.0.1", port=0)
    factory = MockFactory(pin_class=MockPWMPin)
    service = Service(appliance_config.load(write_config(tmp, exchange.url, cfg)),
                      pin_factory=factory)
    await service.start()
    invites: list[float] = []
    service.device._stream.on(
        "frame", lambda f: invites.append(time.perf_counter()) if f.type == "invite" else None)
    shown: list[float] = []
    rung: list[float] = []
    show, ring = service.leds.show, service.sounds.ring

    def timed_show(patterns):
        show(patterns)
        if patterns.get("ring") is not None and str(patterns["ring"]) != "off":
            shown.append(time.perf_counter())

    def timed_ring(on):
        ring(on)
        if on:
            rung.append(time.perf_counter())

    service.leds.show, service.sounds.ring = timed_show, timed_ring
    bob = Device(mint(identity="bob", ttl=600, **cfg.token_kwargs()),
                 signaling_url=exchange.url, ice_addresses=LOOPBACK)
    await bob.register()
    hook_to_answer, invite_to_led, invite_to_ring = [], [], []

    async def until(predicate, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}")
            await asyncio.sleep(0.001)

    async def one_call() -> None:
        n_invites, n_shown, n_rung = len(invites), len(shown), len(rung)
        n_answers = len(answers)
        call = await bob.connect({"To": "client:alice"})
        await until(lambda: len(shown) > n_shown and len(rung) > n_rung, "ringing")
        invite_to_led.append(shown[n_shown] - invites[n_invites])
        invite_to_ring.append(rung[n_rung] - invites[n_invites])
        await asyncio.sleep(0.05)  # let ICE gathering finish, as a person takes a moment
        lifted = time.perf_counter()
        factory.pin(HOOK).drive_low()
        await until(lambda: len(answers) > n_answers, "the answer")
        hook_to_answer.append(answers[n_answers] - lifted)
        await until(lambda: str(call.status()) == "open", "the call open")
        factory.pin(HOOK).drive_high()
        await until(lambda: service.phone.state == "idle" and str(call.status()) == "closed",
                    "idle")

    try:
        for _ in range(calls):
            await one_call()
    finally:
        await bob.destroy()
        await service.close()
        await exchange.close()
        ClientSession._receive = receive
    summary("hook lifted -> answer frame at the exchange", hook_to_answer, 20)
    summary("invite received -> ring LED shown", invite_to_led, 30)
    summary("invite received -> ringer started", invite_to_ring, 30)


async def startup(runs: int, tmp: Path) -> None:
    from piphone.exchange import config as exchange_config
    from piphone.exchange.server import Exchange

    cfg = replace(exchange_config.load(exchange_config.write_starter(tmp / "ex2.toml")),
                  port=0, ice_addresses=LOOPBACK)
    exchange = Exchange(cfg)
    await exchange.start(host="127.0.0.1", port=0)
    config = write_config(tmp, exchange.url, cfg)
    times = []
    try:
        for i in range(runs):
            path = tmp / f"notify{i}"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(str(path))
            sock.setblocking(False)
            env = dict(os.environ, NOTIFY_SOCKET=str(path), GPIOZERO_PIN_FACTORY="mock",
                       GPIOZERO_MOCK_PIN_CLASS="mockpwmpin",
                       PIPHONE_CONTROL_SOCKET=str(tmp / "control.sock"),
                       PYTHONPATH=str(ROOT / "firmware"))
            started = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "piphone", "run", "--config", str(config), cwd=ROOT, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            loop = asyncio.get_running_loop()
            while True:
                data = await asyncio.wait_for(loop.sock_recv(sock, 4096), 30)
                if data == b"READY=1":
                    times.append(time.perf_counter() - started)
                    break
            proc.terminate()
            await proc.wait()
            sock.close()
    finally:
        await exchange.close()
    summary("start of piphone run -> READY=1", times, 1500)


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="piphone-bench-") as tmp:
        await presses(args.calls, Path(tmp))
        await startup(args.starts, Path(tmp))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args()
    ensure_isolated_network(sys.argv)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
