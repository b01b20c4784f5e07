"""The phone's transfer: TRANSFER, a number and ``#`` hands the call on (blind); TRANSFER again
instead of ``#`` calls the number first, the call on hold (attended: a consultation call), and
TRANSFER while a call is held joins the two and leaves. Hanging up the consultation offers the
held call back (two_calls.py). ``piphone transfer NUMBER [--attended]`` and ``piphone transfer
--complete`` do the same through the control socket.

Who carries a transfer out is a ``Transferer`` the service gives the phone: on the local
exchange, the exchange (``ExchangeTransfer``: the voice Call's transfer frame, and the exchange
hangs the phone up); on Twilio, Twilio's REST API (twilio_transfer.py). A phone with none
(Twilio with a fixed token: no API key to ask with) refuses the key.

A part of the Phone (phone.py), whose table rows (table.py) name these methods; split off so
that each module has one job. ``Transfers`` declares what it uses of the Phone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Generic, Protocol

from transitions import EventData

from ..voice import Call
from .ports import CallT

if TYPE_CHECKING:
    from .lines import Lines
    from .ports import Sounds
    from .timers import Timers

log = logging.getLogger(__name__)


class Transferer(Protocol):
    """Carries out a transfer; raises (PiphoneError, TwilioError) when it cannot."""

    conferences: bool  # whether it can join three in a conference too

    async def blind(self, call: Any, to: str) -> None:
        """Hand ``call``'s far party on to ``to``; the phone leaves ``call``."""

    async def join(self, call: Any, held: Any, peer: str | None) -> None:
        """Join ``held``'s far party and ``call``'s (whose number is ``peer``); the phone
        leaves both."""

    async def conference(self, call: Any, held: Any) -> None:
        """``held``'s far party joins ``call``: the three talk; ``held`` ends."""


class ExchangeTransfer:
    """The local exchange does it (exchange/transfers.py): it hangs the phone's calls up when
    it has, or the call's ``error`` event says why not."""

    conferences = True

    async def blind(self, call: Call, to: str) -> None:
        call.transfer(to)

    async def join(self, call: Call, held: Call, peer: str | None) -> None:
        call.transfer(joining=held)

    async def conference(self, call: Call, held: Call) -> None:
        call.transfer(joining=held, conference=True)


class Transfers(Generic[CallT]):
    transferer: Transferer | None = None  # the service's; None: transfers refused

    if TYPE_CHECKING:  # the Phone's (phone.py)
        lines: Lines[CallT]
        sounds: Sounds
        timers: Timers
        digits: str
        peer: str | None
        last_error: object | None

        @property
        def call(self) -> CallT | None: ...

        @property
        def held(self) -> CallT | None: ...

        def fire(self, trigger: str, **kwargs: Any) -> bool: ...

        def _place(self, number: str) -> None: ...

    # --- ways in (control socket) ----------------------------------------------------------
    def transfer_call(self, number: str | None = None, attended: bool = False) -> bool:
        """``piphone transfer NUMBER [--attended]``; no number: complete an attended one."""
        if number is None:
            return self.held is not None and self.fire("press_transfer")
        return self.fire("transfer_to", number=number, attended=attended)

    def conference_call(self) -> bool:
        """``piphone conference``: the held call and this one, together."""
        return self.fire("press_conference")

    # --- conditions ------------------------------------------------------------------------
    def can_transfer(self, _event: EventData) -> bool:
        return self.transferer is not None

    def can_conference(self, _event: EventData) -> bool:
        return self.transferer is not None and self.transferer.conferences

    def attended(self, event: EventData) -> bool:
        return bool(event.kwargs.get("attended"))

    # --- actions ---------------------------------------------------------------------------
    def start_transfer(self, _event: EventData) -> None:
        """The call goes on hold while the number is keyed (dial tone: cues.py)."""
        self.digits = ""
        self.lines.hold(True)

    def collect_transfer_digit(self, event: EventData) -> None:
        """A key while keying the number: ``#`` hands the call on (no timeout does: TRANSFER
        may still come, for an attended transfer)."""
        digit = event.kwargs.get("digit")
        if not digit:
            return
        self.sounds.dtmf(digit)
        if digit == "#":
            asyncio.get_running_loop().call_soon(self.fire, "dial")
        else:
            self.digits += digit

    def leave_transfer(self, _event: EventData) -> None:
        self.digits = ""

    def blind_transfer(self, event: EventData) -> None:
        number = str(event.kwargs.get("number") or self.digits)
        self.digits = ""  # refused: the number may be keyed again (dial tone)
        call = self.call
        assert call is not None and self.transferer is not None
        log.info("transferring the call to %s", number)
        self._carry_out(self.transferer.blind(call, number))

    def consult(self, event: EventData) -> None:
        """Attended: the call goes on hold (held: two_calls.py) and the number is called."""
        number = str(event.kwargs.get("number") or self.digits)
        self.lines.park()
        self._place(number)

    def complete_transfer(self, _event: EventData) -> None:
        call, held = self.call, self.held
        assert call is not None and held is not None and self.transferer is not None
        log.info("joining the held call and %s", self.peer)
        self._carry_out(self.transferer.join(call, held, self.peer))

    def join_conference(self, _event: EventData) -> None:
        """The held call's far party joins this call (the held call ends: two_calls.py)."""
        call, held = self.call, self.held
        assert call is not None and held is not None and self.transferer is not None
        log.info("a conference with the held call and %s", self.peer)
        self._carry_out(self.transferer.conference(call, held))

    def _carry_out(self, step: Any) -> None:
        def done(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                log.warning("transfer failed: %s", task.exception())
                self.fire("failed", error=task.exception())

        asyncio.ensure_future(step).add_done_callback(done)
