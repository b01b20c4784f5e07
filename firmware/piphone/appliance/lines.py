"""The calls the phone follows: the one its state is about, one that waits, one on hold.

With call waiting (``[phone] call_waiting``) the phone follows up to two calls: its call and
either a second one that rings while the first is up (``waiting``) or, once that one was
accepted, the first one on hold (``held``); a third is refused as busy (table.py). Each is a
CallBinding (bindings.py) that knows its peer. Moving a call from one place to another is
done here, so that each of the phone's actions (phone.py) stays a line or two. Hold itself is
the voice Call's piphone extension (``Call.hold``): the far end hears the phone's hold music,
and the earpiece does not play it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic

from . import bindings
from .bindings import CallBinding, Fire
from .ports import CallT


class Lines(Generic[CallT]):
    """``current`` (the call the state is about), ``waiting`` and ``held``: each None or the
    binding of one call."""

    def __init__(self, fire: Fire, on_mute: Callable[[bool], None]) -> None:
        self._fire = fire
        self._on_mute = on_mute
        self.current: CallBinding[CallT] | None = None
        self.waiting: CallBinding[CallT] | None = None
        self.held: CallBinding[CallT] | None = None

    def follow(self, call: CallT, peer: str | None) -> None:
        """Make ``call`` the phone's call: its events drive the machine from now on."""
        if self.current is not None:
            self.current.release()
        self.current = bindings.follow(call, self._fire, self._on_mute, peer)

    def release(self) -> CallT:
        """Stop following the phone's call (so our own hang-up does not come back as an
        event); returns it."""
        assert self.current is not None
        current, self.current = self.current, None
        return current.release()

    def wait(self, call: CallT, peer: str | None) -> None:
        self.waiting = bindings.waiting(call, self._fire, peer)

    def take_waiting(self) -> CallBinding[CallT]:
        """The waiting call, no longer waiting (no longer followed as such)."""
        assert self.waiting is not None
        waiting, self.waiting = self.waiting, None
        waiting.release()
        return waiting

    def take_held(self) -> CallBinding[CallT]:
        """The held call, no longer followed as such (still on hold)."""
        assert self.held is not None
        held, self.held = self.held, None
        held.release()
        return held

    def keep_held(self, call: CallT, peer: str | None) -> None:
        """``call`` (already on hold) is the held one: a call a previous run kept."""
        self.held = bindings.held(call, self._fire, peer)

    def hold(self, on: bool) -> None:
        """Put the phone's call on hold, or take it off."""
        assert self.current is not None
        self.current.call.hold(on)

    def accept_waiting(self) -> str | None:
        """The phone's call goes on hold and the waiting one is answered in its place;
        returns the new call's peer."""
        self._hold_current()
        waiting = self.take_waiting()
        self.follow(waiting.call, waiting.peer)
        waiting.call.accept()
        return waiting.peer

    def swap(self) -> str | None:
        """The held call back, the phone's call on hold in its place; returns the peer."""
        held = self.take_held()
        self._hold_current()
        self.follow(held.call, held.peer)
        held.call.hold(False)
        return held.peer

    def offer_held(self) -> str | None:
        """The phone's call is over: the held call becomes the phone's call, still on hold
        until taken back; returns its peer."""
        if self.current is not None:
            self.release()
        held = self.take_held()
        self.follow(held.call, held.peer)
        return held.peer

    def park(self) -> None:
        """The phone's call goes on hold as the held call (a consultation call follows)."""
        self._hold_current()

    def _hold_current(self) -> None:
        assert self.current is not None
        current = self.current
        self.release()
        current.call.hold(True)
        self.held = bindings.held(current.call, self._fire, current.peer)
