"""`piphone run --config` as a subprocess under a fake systemd: a unix datagram NOTIFY_SOCKET
bound by the test receives READY=1, STATUS= and WATCHDOG=1; SIGHUP reloads between calls;
SIGTERM hangs up and exits 0; a bad config exits non-zero naming key and line."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import until

from .appliance_rig import write_phone_config

pytestmark = pytest.mark.net

ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, exchange, identity: str = "alice", phone: str = "") -> Path:
    return write_phone_config(path, exchange, identity=identity,
                              phone='call_log = ""\n' + phone, rest="""\
[alerts]
ring_pattern = [0.1, 0.1]
""")


class FakeSystemd:
    """The notify socket: every datagram the service sends, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[tuple[float, str]] = []
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 4096)
            self.messages.append((time.monotonic(), data.decode()))

    def got(self, message: str) -> bool:
        return any(m == message for _, m in self.messages)

    def statuses(self) -> list[str]:
        return [m[7:] for _, m in self.messages if m.startswith("STATUS=")]

    def close(self) -> None:
        self._task.cancel()
        self.sock.close()


@pytest.fixture
def systemd(tmp_path):
    fake = FakeSystemd(tmp_path / "notify")
    yield fake
    fake.close()


def environment(systemd: FakeSystemd, **extra: str) -> dict[str, str]:
    env = dict(os.environ, NOTIFY_SOCKET=str(systemd.path),
               PIPHONE_CONTROL_SOCKET=str(systemd.path.with_name("control.sock")),
               GPIOZERO_PIN_FACTORY="mock", GPIOZERO_MOCK_PIN_CLASS="mockpwmpin",
               PYTHONPATH=os.pathsep.join([str(ROOT / "firmware"), str(ROOT)]), **extra)
    env.pop("WATCHDOG_PID", None)
    return env


async def start_service(config: Path, systemd: FakeSystemd, watchdog_usec: int = 200_000):
    env = environment(systemd, WATCHDOG_USEC=str(watchdog_usec))
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "piphone", "run", "--config", str(config), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def cli(systemd: FakeSystemd, *args: str) -> tuple[int, str]:
    """`piphone ARGS` as a user over ssh would run it, next to the service."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "piphone", *args, cwd=ROOT, env=environment(systemd),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode()


async def stop(proc, sig=signal.SIGTERM) -> tuple[int, str]:
    if proc.returncode is None and sig is not None:
        proc.send_signal(sig)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    return proc.returncode, err.decode()


async def test_ready_status_watchdog_reload_and_stop(tmp_path, exchange, make_phone, systemd):
    config = write_config(tmp_path, exchange)
    started = time.monotonic()
    proc = await start_service(config, systemd)
    try:
        await until(lambda: systemd.got("READY=1") or proc.returncode is not None,
                    timeout=30, what="READY=1")
        assert proc.returncode is None
        ready_at = next(t for t, m in systemd.messages if m == "READY=1")
        print(f"\nbenchmark: start of piphone run -> READY=1: {ready_at - started:.2f} s")
        assert "registered as alice" in systemd.statuses()
        # WATCHDOG=1 keeps coming from the loop at half of WATCHDOG_USEC (0.1 s)
        count = sum(1 for _, m in systemd.messages if m == "WATCHDOG=1")
        await until(lambda: sum(1 for _, m in systemd.messages if m == "WATCHDOG=1")
                    >= count + 3, timeout=5, what="three more WATCHDOG=1")
        # a call rings; SIGHUP with a new identity waits for the call's end
        bob = await make_phone("bob")
        call = await bob.device.connect({"To": "client:alice"})
        await until(lambda: any(s.startswith("ringing: call from") for s in systemd.statuses()),
                    timeout=10, what="STATUS ringing")
        write_config(tmp_path, exchange, identity="carol")
        proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)  # a reload that did not wait would show up within this
        assert "registered as carol" not in systemd.statuses()
        call.disconnect()
        await until(lambda: "registered as carol" in systemd.statuses(), timeout=15,
                    what="reloaded as carol after the call")
        assert systemd.got("RELOADING=1")
        # a bad config on SIGHUP is refused and the phone goes on
        (tmp_path / "piphone.toml").write_text("[account]\nidentity = 5\n")
        proc.send_signal(signal.SIGHUP)
        await until(lambda: any("config not reloaded" in s for s in systemd.statuses()),
                    timeout=10, what="a refused reload")
        assert "account.identity" in systemd.statuses()[-1]
        assert proc.returncode is None
    finally:
        code, err = await stop(proc)
    assert code == 0, err
    assert systemd.got("STOPPING=1")


async def test_sigterm_hangs_up_the_call(tmp_path, exchange, make_phone, systemd):
    config = write_config(tmp_path, exchange, phone="auto_answer_rings = 1")
    proc = await start_service(config, systemd, watchdog_usec=0)
    try:
        await until(lambda: systemd.got("READY=1") or proc.returncode is not None,
                    timeout=30, what="READY=1")
        bob = await make_phone("bob")
        call = await bob.device.connect({"To": "client:alice"})
        accepted, ended = [], []
        call.on("accept", accepted.append)
        call.on("disconnect", ended.append)
        await until(lambda: accepted, timeout=15, what="auto-answer")
        await until(lambda: any(s.startswith("talking to") for s in systemd.statuses()),
                    timeout=10, what="STATUS talking")
        assert not systemd.got("WATCHDOG=1")  # WATCHDOG_USEC=0: no watchdog asked for
    finally:
        code, err = await stop(proc)
    assert code == 0, err
    await until(lambda: ended, timeout=10, what="bob hears the hang-up")


async def test_bad_config_exits_nonzero_naming_key_and_line(tmp_path, exchange, systemd):
    config = write_config(tmp_path, exchange, phone='dnd = "sometimes"')
    proc = await start_service(config, systemd)
    code, err = await stop(proc, sig=None)
    assert code == 2
    assert f"{config}, line 13: phone.dnd: must be reject or ignore" in err
    assert not systemd.got("READY=1")


async def test_control_socket_status_call_hangup(tmp_path, exchange, make_phone, systemd):
    proc = await start_service(write_config(tmp_path, exchange), systemd)
    try:
        await until(lambda: systemd.got("READY=1") or proc.returncode is not None,
                    timeout=30, what="READY=1")
        code, out = await cli(systemd, "status")
        assert code == 0 and out.startswith("registered as alice\n"), out
        assert "  state: idle" in out and "  registered: True" in out
        code, out = await cli(systemd, "hangup")  # nothing to hang up
        assert code == 1 and "hangup does nothing while the phone is idle" in out
        bob = await make_phone("bob")
        code, out = await cli(systemd, "call", "client:bob")
        assert code == 0 and "call: calling" in out, out
        call = await bob.next_call(timeout=10)
        call.accept()
        await until(lambda: any(s.startswith("talking to client:bob") for s in
                                systemd.statuses()), timeout=10, what="STATUS talking")
        # the quality monitor's samples put the call's MOS in the status line
        await until(lambda: any(s.startswith("talking to client:bob, MOS ") for s in
                                systemd.statuses()), timeout=10, what="STATUS with MOS")
        code, out = await cli(systemd, "status", "--json")
        assert code == 0 and '"state": "talking"' in out and '"peer": "client:bob"' in out
        ended = []
        call.on("disconnect", ended.append)
        code, out = await cli(systemd, "hangup")
        assert code == 0, out
        await until(lambda: ended, timeout=10, what="bob hears the hang-up")
    finally:
        code, err = await stop(proc)
    assert code == 0, err
    code, out = await cli(systemd, "status")
    assert code == 2 and "no piphone service is running" in out
