"""The phone's actions with two calls: call waiting (a second call rings while the phone talks;
accepting it holds the first), hold, swap, and the held call offered when the active one ends.
The calls themselves are lines.py's.

A part of the Phone (phone.py), whose table rows (table.py) name these methods; split off so
that each module has one job. ``TwoCalls`` declares what it uses of the Phone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic

from transitions import EventData

from .ports import CallT

if TYPE_CHECKING:
    from .lines import Lines
    from .ports import Sounds


class TwoCalls(Generic[CallT]):
    if TYPE_CHECKING:  # the Phone's (phone.py)
        lines: Lines[CallT]
        sounds: Sounds
        peer: str | None
        muted: bool

        @property
        def call(self) -> CallT | None: ...

        @property
        def held(self) -> CallT | None: ...

        @property
        def waiting(self) -> CallT | None: ...

        def _reset_call(self) -> None: ...

        def _attach(self, call: CallT) -> None: ...

    # --- conditions ------------------------------------------------------------------------
    def has_waiting(self, _event: EventData) -> bool:
        return self.lines.waiting is not None

    def has_held(self, _event: EventData) -> bool:
        return self.lines.held is not None

    # --- actions ---------------------------------------------------------------------------
    def let_wait(self, event: EventData) -> None:
        call: CallT = event.kwargs["call"]
        self.lines.wait(call, call.parameters.get("From"))
        self.sounds.beep("waiting")

    def accept_waiting(self, _event: EventData) -> None:
        """Answer the waiting call; the phone's call goes on hold."""
        self.peer = self.lines.accept_waiting()
        self.muted = False

    def ring_waiting(self, _event: EventData) -> None:
        """The call ended with another waiting: that one rings now."""
        self._reset_call()
        waiting = self.lines.take_waiting()
        self.peer = waiting.peer
        self._attach(waiting.call)

    def reject_waiting(self, _event: EventData) -> None:
        self.lines.take_waiting().call.reject()

    def ignore_waiting(self, _event: EventData) -> None:
        self.lines.take_waiting().call.ignore()

    def put_on_hold(self, _event: EventData) -> None:
        self.lines.hold(True)

    def take_back(self, _event: EventData) -> None:
        self.lines.hold(False)

    def swap_calls(self, _event: EventData) -> None:
        self.peer = self.lines.swap()
        self.muted = self.call is not None and self.call.is_muted()

    def offer_held(self, _event: EventData) -> None:
        """The active call is over: the held one is the phone's call now (still on hold)."""
        self._reset_call()
        self.peer = self.lines.offer_held()
        self.muted = self.call is not None and self.call.is_muted()

    def forget_waiting(self, event: EventData) -> None:
        if self.waiting is not None and self.waiting is event.kwargs.get("call"):
            self.lines.take_waiting()

    def forget_held(self, event: EventData) -> None:
        if self.held is not None and self.held is event.kwargs.get("call"):
            self.lines.take_held()
