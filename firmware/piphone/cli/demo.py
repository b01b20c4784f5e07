"""`piphone run --terminal`: the whole appliance on a machine with no GPIO and no phone line.

A local exchange on 127.0.0.1, the real service (phone state machine, panel inputs with their
debounce, LEDs) on gpiozero's mock pins drawn by the terminal panel, and a caller that rings
the phone every few seconds while it is idle, so a newcomer can answer with a key and see it
all work. Dial ``2#`` for the exchange's echo line, ``3#`` for its tone, ``200#`` for the
caller (it answers). A call left ringing goes to the exchange's voicemail after
VOICEMAIL_AFTER seconds (the caller leaves a short tone): ``v`` plays it. Sound goes to
``--headset`` (default: none, the null audio device).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..appliance.config import AccountConfig, ApplianceConfig, AudioConfig, PhoneConfig
from ..appliance.contacts import Contact, Contacts
from ..appliance.service import Service
from ..voice import Call, CallStatus, Device

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1",)
PHONE, CALLER = "phone", "caller"
GIVE_UP = 20.0  # seconds the caller lets an unanswered call ring
VOICEMAIL_AFTER, MESSAGE_SECONDS = 10.0, 4.0  # the demo's voicemail: sooner, and short
DEMO_CONTACTS = Contacts((Contact("Caller", f"client:{CALLER}", 1), Contact("Echo", "2", 2),
                          Contact("Tone", "3")))  # the first two on the speed-dial keys j, k


class Caller:
    """A second Device that calls the phone while it is idle and answers the phone's calls."""

    def __init__(self, device: Device, service: Service, every: float) -> None:
        self.device, self.service, self.every = device, service, every
        self.call: Call | None = None
        device.on("incoming", self._answer)
        self._task = asyncio.ensure_future(self._loop())

    def _answer(self, call: Call) -> None:
        self.call = call
        call.accept()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            phone = self.service.phone
            busy = self.call is not None and self.call.status() is not CallStatus.CLOSED
            if phone is None or phone.state != "idle" or busy or phone.dnd:
                continue
            try:
                self.call = call = await self.device.connect({"To": f"client:{PHONE}"})
            except Exception as exc:  # the demo goes on; the next try may work
                log.warning("the demo caller could not call: %s", exc)
                continue
            started = time.monotonic()
            while call.status() in (CallStatus.CONNECTING, CallStatus.RINGING):
                if time.monotonic() - started > GIVE_UP:
                    call.disconnect()
                    break
                await asyncio.sleep(0.2)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.device.destroy()


def info(service: Service, since: dict[str, float]) -> dict[str, str]:
    """The lines under the lamps: state, the call, its quality."""
    phone = service.phone
    if phone is None:
        return {"state": "starting"}
    lines = {"status": service.status_line(), "state": phone.state}
    call = phone.call
    peer = service.cfg.contacts.labelled(phone.peer)
    if phone.state == "talking":
        since.setdefault("talking", time.monotonic())
        seconds = int(time.monotonic() - since["talking"])
        lines["call"] = f"{peer}  {seconds // 60}:{seconds % 60:02d}"
        lines["codec"] = (call.codec if call is not None else "") or "-"
    else:
        since.pop("talking", None)
        if peer:
            lines["call"] = peer
    if phone.digits:
        lines["dialled"] = phone.digits
    if phone.warnings:
        lines["warnings"] = ", ".join(sorted(phone.warnings))
    lines["do not disturb"] = "on" if phone.dnd else "off"
    lines["missed calls"] = (f"{phone.missed} (c marks them seen)" if phone.missed
                             else "none") + (f"; last caller {phone.last_caller} (c off hook "
                                             "calls back)" if phone.last_caller else "")
    mailbox = phone.mailbox
    lines["voicemail"] = (f"{mailbox.unheard} new of {mailbox.messages} (v plays; # next, "
                          "7 deletes)" if mailbox.messages else
                          f"none (a call left ringing {VOICEMAIL_AFTER:.0f} s goes there)")
    lines["volume"] = f"call {phone.volume_step}/10, ringer {phone.ringer_step}/10"
    keys = {1: "j", 2: "k"}  # the terminal's speed-dial keys (panel/terminal.py)
    lines["speed dial"] = "  ".join(f"{keys[c.speed]} {c.name}" for c in service.cfg.contacts
                                    if c.speed in keys)
    lines["try"] = "h lifts the handset to answer; 2# echo, 3# tone, 200# the caller"
    return lines


async def run(*, headset: str = "none", call_every: float = 5.0, console: Any = None,
              stdin: Any = None) -> int:
    from rich.console import Console
    from rich.logging import RichHandler

    from ..exchange import config as exchange_config
    from ..exchange.server import Exchange
    from ..panel.pins import (
        DEFAULT_PINS,
        DESK_PINS,
        KEYPAD_MATRIX_PINS,
        InputPin,
        PinMap,
        mock_factory,
    )
    from ..panel.terminal import TerminalPanel
    from ..pcm import Tone
    from ..voice.tokens import mint

    console = console or Console()
    root = logging.getLogger()
    handler = RichHandler(console=console, show_path=False)  # logs above the panel
    root.handlers[:] = [handler]
    if root.level < logging.WARNING and root.level != logging.DEBUG:
        root.setLevel(logging.WARNING)  # the panel shows what happens; -v shows all
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="piphone-demo-") as tmp:
        ex_cfg = exchange_config.load(exchange_config.write_starter(Path(tmp) / "ex.toml"))
        ex_cfg = replace(ex_cfg, host="127.0.0.1", port=0, ice_addresses=LOOPBACK,
                         lines={"2": "echo", "3": "tone", "echo": "echo", "tone": "tone"},
                         numbers={"100": PHONE, "200": CALLER}, ring_timeout=GIVE_UP + 5,
                         voicemail=replace(ex_cfg.voicemail, enabled=True,
                                           ring_timeout=VOICEMAIL_AFTER,
                                           max_seconds=MESSAGE_SECONDS,
                                           directory=str(Path(tmp) / "voicemail")))
        exchange = Exchange(ex_cfg)
        await exchange.start()
        # the matrix keypad, so the desk keys and LEDs fit beside it (hardware/README.md)
        # and the voicemail key and LED on GPIO 0 and 1: only on mock pins (on a Pi those are
        # the HAT EEPROM's, and the real header has no other pin left for them)
        pins = DEFAULT_PINS.merged(KEYPAD_MATRIX_PINS).merged(DESK_PINS).merged(
            PinMap({"voicemail": InputPin(0)}, {"voicemail": 1}))
        keys: dict[str, Any] = ex_cfg.token_kwargs()  # account_sid, api_key_sid and secret
        cfg = ApplianceConfig(
            account=AccountConfig(identity=PHONE, signaling_url=exchange.url,
                                  ice_addresses=LOOPBACK, **keys),
            audio=AudioConfig(headset=headset), pins=pins,
            # a demo keeps its own call log (missed calls, call-back) and leaves the phone's
            # call log and state file alone
            phone=PhoneConfig(call_log=str(Path(tmp) / "calls.db"), state_file=None),
            contacts=DEMO_CONTACTS)
        factory = mock_factory()
        service = Service(cfg, pin_factory=factory)
        caller: Caller | None = None
        try:
            await service.start()
            device = Device(mint(identity=CALLER, ttl=3600, **keys),
                            signaling_url=exchange.url, ice_addresses=LOOPBACK,
                            audio_source=lambda: Tone(440.0))
            await device.register()
            caller = Caller(device, service, call_every)
            panel = TerminalPanel(pins, factory, loop=loop)
            since: dict[str, float] = {}
            await panel.run(lambda: info(service, since), console=console, stdin=stdin)
        finally:
            if caller is not None:
                await caller.close()
            await service.close()
            await exchange.close()
    return 0
