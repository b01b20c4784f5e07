"""The phone's timers: named, on the loop, one of a name at a time (the dial timeout, the ring
cadence that auto-answer counts, the mute reminder)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Timers:
    """``start(name, ...)`` replaces a running timer of that name; ``cancel_all()`` stops all."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handles: dict[str, asyncio.TimerHandle] = {}

    def start(self, name: str, delay: float, action: Callable[[], object], *,
              repeat: bool = False) -> None:
        """Run ``action`` after ``delay`` seconds (and every ``delay`` after, with ``repeat``)."""
        self.cancel(name)

        def fire() -> None:
            if repeat:
                self._handles[name] = self._loop.call_later(delay, fire)
            else:
                self._handles.pop(name, None)
            action()

        self._handles[name] = self._loop.call_later(delay, fire)

    def cancel(self, name: str) -> None:
        handle = self._handles.pop(name, None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        for name in list(self._handles):
            self.cancel(name)

    @property
    def running(self) -> frozenset[str]:
        """The names of the timers that will still fire."""
        return frozenset(self._handles)

    def __contains__(self, name: object) -> bool:
        return name in self._handles
