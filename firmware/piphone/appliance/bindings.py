"""A call's events bound to the phone's triggers, for as long as the phone follows the call.

The phone keeps one ``CallBinding`` per call it follows (its call, a waiting call and a held
one with call waiting; lines.py): its own state about that call (who is at the other end),
never attributes set on the Call itself.
``release()`` unsubscribes, so the phone's own hang-up does not come back to it as an event.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic

from ..voice import CallStatus
from .ports import CallT, Handler

Fire = Callable[..., bool]  # Phone.fire(trigger, **kwargs)


class CallBinding(Generic[CallT]):
    """``handlers`` (event name -> handler) subscribed on ``call`` until ``release()``."""

    def __init__(self, call: CallT, handlers: Mapping[str, Handler],
                 peer: str | None = None) -> None:
        self.call = call
        self.peer = peer  # the number or identity at the other end, as the phone knows it
        self._bound = True
        self._handlers = {name: self._guarded(handler) for name, handler in handlers.items()}
        for name, handler in self._handlers.items():
            call.on(name, handler)

    def _guarded(self, handler: Handler) -> Handler:
        def guarded(*args: Any) -> None:
            if self._bound:  # pyee may still call a listener removed during its emit
                handler(*args)
        return guarded

    def release(self) -> CallT:
        """Stop following the call (idempotent); returns it."""
        if self._bound:
            self._bound = False
            for name, handler in self._handlers.items():
                self.call.remove_listener(name, handler)
        return self.call


def follow(call: CallT, fire: Fire, on_mute: Callable[[bool], None],
           peer: str | None = None) -> CallBinding[CallT]:
    """The phone's call: its events drive the machine."""
    return CallBinding(call, {
        "accept": lambda *_: fire("answered"),
        "cancel": lambda *_: fire("ended"),
        "disconnect": lambda *_: fire("ended"),
        "reject": lambda *_: fire("ended"),
        "status": lambda status: fire("ended") if status is CallStatus.CLOSED else None,
        "reconnecting": lambda *_: fire("reconnecting"),
        "reconnected": lambda *_: fire("reconnected"),
        "warning": lambda name, *_: fire("warning", name=name),
        "warning-cleared": lambda name, *_: fire("warning_cleared", name=name),
        "error": lambda error, *_: fire("failed", error=error),
        "mute": lambda muted, *_: on_mute(bool(muted)),
    }, peer)


def waiting(call: CallT, fire: Fire, peer: str | None = None) -> CallBinding[CallT]:
    """A call that waits (call waiting): only its end matters, as ``waiting_ended``."""
    return CallBinding(call, {
        "status": lambda status: fire("waiting_ended", call=call)
        if status is CallStatus.CLOSED else None,
    }, peer)


def held(call: CallT, fire: Fire, peer: str | None = None) -> CallBinding[CallT]:
    """A call on hold while the phone talks on another: only its end matters, as
    ``held_ended``."""
    return CallBinding(call, {
        "status": lambda status: fire("held_ended", call=call)
        if status is CallStatus.CLOSED else None,
    }, peer)
