"""The phone's actions that dial: the handset and keypad (digits, the dial timeout, DTMF in a
call), redial, call-back, speed dial, and the kept call a restart resumes; each places the call
through the Device and follows it once the invite is out.

A part of the Phone (phone.py), whose table rows (table.py) name these methods; split off so
that each module has one job. ``Dialing`` declares what it uses of the Phone.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic

from transitions import EventData

from ..voice import CallStatus
from .ports import CallT

if TYPE_CHECKING:
    from .config import PhoneConfig
    from .ports import PhoneDevice, Sounds
    from .timers import Timers

log = logging.getLogger(__name__)


class Dialing(Generic[CallT]):
    if TYPE_CHECKING:  # the Phone's (phone.py)
        state: str
        device: PhoneDevice[CallT]
        sounds: Sounds
        settings: PhoneConfig
        timers: Timers
        digits: str
        peer: str | None
        last_number: str | None
        last_caller: str | None
        last_error: object | None
        speed_numbers: Mapping[str, str]
        _loop: asyncio.AbstractEventLoop
        _connecting: asyncio.Task[None] | None

        @property
        def call(self) -> CallT | None: ...

        def fire(self, trigger: str, **kwargs: Any) -> bool: ...

        def mark_seen(self, _event: EventData) -> None: ...

        def _attach(self, call: CallT) -> None: ...

        def after_event(self, event: EventData | None) -> None: ...

    def start_dialing(self, _event: EventData) -> None:
        self.digits = ""

    def collect_digit(self, event: EventData) -> None:
        digit = event.kwargs.get("digit")
        if not digit:
            return
        self.sounds.dtmf(digit)
        if digit == "#":  # '#' ends the number (a lone '#' dials nothing)
            self.timers.cancel("dial")
            self._loop.call_soon(self.fire, "dial")
            return
        self.digits += digit
        self.timers.start("dial", self.settings.dial_timeout, functools.partial(self.fire, "dial"))

    def send_digit(self, event: EventData) -> None:
        digit = event.kwargs.get("digit")
        call = self.call
        if not digit or call is None or call.status() is not CallStatus.OPEN:
            return
        call.send_digits(digit)
        self.sounds.dtmf(digit)

    def dial_digits(self, _event: EventData) -> None:
        self._place(self.digits)

    def dial_number(self, event: EventData) -> None:
        self._place(str(event.kwargs["number"]))

    def redial(self, _event: EventData) -> None:
        assert self.last_number
        self._place(self.last_number)

    def call_back(self, event: EventData) -> None:
        assert self.last_caller
        self.mark_seen(event)
        self._place(self.last_caller)

    def speed_dial(self, event: EventData) -> None:
        self._place(self.speed_numbers[event.kwargs["digit"]])

    def _place(self, number: str) -> None:
        self.timers.cancel("dial")
        self.digits = ""
        self.last_number = self.peer = number
        self._connecting = asyncio.ensure_future(self._connect(number))

    def resume(self, event: EventData) -> None:
        """Take back the call a previous run of the phone kept (its connect token)."""
        self.peer = event.kwargs.get("peer")
        self._connecting = asyncio.ensure_future(self._connect(
            self.peer or "the kept call", event.kwargs["token"], event.kwargs.get("held", False)))

    async def _connect(self, number: str, connect_token: str | None = None,
                       held: bool = False) -> None:
        task = asyncio.current_task()
        try:
            call = await (self.device.connect({"To": number}) if connect_token is None
                          else self.device.connect(connect_token=connect_token))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # TwilioError, a lost stream: the attempt is over
            log.warning("call to %s failed: %s", number, exc)
            if self._connecting is task:
                self._connecting = None
                self.last_error = exc
                self.fire("ended")
            return
        if self._connecting is not task or self.state not in ("calling", "reconnecting"):
            call.disconnect()  # hung up while the invite went out
            return
        self._connecting = None
        if held:  # a kept call that was on hold is resumed on hold ("answered" -> held)
            call.hold(True)
        self._attach(call)
        self.after_event(None)  # listeners (the call log) follow it before its first event
        if call.status() is CallStatus.CLOSED:  # ended before we listened
            self.fire("ended")

