"""An event loop on a virtual clock, for unit tests of timers without sleeping.

``loop.time()`` starts at 0 and moves only when the loop has nothing ready to run: then it
jumps straight to the next timer (``call_later``, ``asyncio.sleep``, ``asyncio.timeout``) and
runs it. A test drives the clock by awaiting: ``await asyncio.sleep(2.9)`` runs everything due
in those 2.9 s, in order, in no real time; ``loop.time()`` says when things happened.

Written here rather than taken from a plugin (looptime does the same) because it is 40 lines
on asyncio's own loop, with no new test dependency and nothing patched globally: only the
tests decorated with ``virtual_clock`` run on it. Not for sockets: a loop waiting on I/O with
no timer left is a test that would hang, and it fails at once instead.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from typing import Any


class _Jump:
    """The loop's selector: never blocks while a timer is pending; it moves the clock."""

    def __init__(self, real: selectors.BaseSelector, loop: VirtualClockLoop) -> None:
        self._real = real
        self._loop = loop

    def select(self, timeout: float | None = None) -> list:
        events = self._real.select(0)
        if events or timeout == 0:
            return events
        if timeout is not None:  # nothing to do until the next timer: it is due now
            self._loop.now += timeout
            return []
        events = self._real.select(1.0)  # only a thread can wake us (call_soon_threadsafe)
        if not events:
            raise RuntimeError("virtual clock: nothing scheduled and nothing ready (a hang)")
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        real: selectors.BaseSelector = self._selector  # type: ignore[has-type]  # asyncio's
        self._selector: Any = _Jump(real, self)

    def time(self) -> float:
        return self.now


def virtual_clock(test: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
    """Run an ``async def`` test on a VirtualClockLoop (a plain test to pytest)."""

    def run() -> Any:
        with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
            return runner.run(test())

    run.__name__, run.__qualname__, run.__doc__ = test.__name__, test.__qualname__, test.__doc__
    return run
