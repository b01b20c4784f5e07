"""The phone's actions with two calls: call waiting (a second call rings while the phone talks;
accepting it holds the first), hold, swap, and the held call offered when the active one ends.
The calls themselves are lines.py's.

A part of the Phone (phone.py), whose table rows (table.py) name these methods; split off so
that each module has one job. ``TwoCalls`` declares what it uses of the Phone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Generic

from transitions import EventData

from .ports import CallT

if TYPE_CHECKING:
    from .lines import Lines
    from .ports import PhoneDevice, Sounds

log = logging.getLogger(__name__)


class TwoCalls(Generic[CallT]):
    if TYPE_CHECKING:  # the Phone's (phone.py)
        lines: Lines[CallT]
        sounds: Sounds
        device: PhoneDevice[CallT]
        _resuming_held: asyncio.Task[None] | None
        _connecting: asyncio.Task[None] | None
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

        def fire(self, trigger: str, **kwargs: object) -> bool: ...

        def after_event(self, event: EventData | None) -> None: ...

    # --- conditions ------------------------------------------------------------------------
    def has_waiting(self, _event: EventData) -> bool:
        return self.lines.waiting is not None

    def has_held(self, _event: EventData) -> bool:
        return self.lines.held is not None

    def on_hold(self, _event: EventData) -> bool:
        return self.call is not None and self.call.is_on_hold()

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

    def resume_held(self, event: EventData) -> None:
        """The second call a previous run kept (it was on hold behind the first): taken back,
        on hold (kept_call.py)."""
        self._resuming_held = asyncio.ensure_future(
            self._resume_held(event.kwargs["token"], event.kwargs.get("peer")))

    async def _resume_held(self, token: str, peer: str | None) -> None:
        try:
            if self._connecting is not None:  # the first call is on its way back: after it
                await asyncio.wait([self._connecting])
            call = await self.device.connect(connect_token=token)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # gone meanwhile (hung up by the far party, or timed out)
            log.warning("the held call with %s could not be resumed: %s", peer or "someone",
                        exc)
            return
        finally:
            self._resuming_held = None
        call.hold(True)
        if self.lines.current is None:  # the first call did not come back: this one is it
            self.lines.follow(call, peer)
            self.peer = peer
            self.fire("held_back")
        elif self.lines.held is None:
            self.lines.keep_held(call, peer)
            self.after_event(None)  # the service keeps it again
        else:  # cannot happen: the phone follows two calls at most
            call.disconnect()
