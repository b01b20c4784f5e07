"""Background tasks with an owner: kept until done, failures logged, cancelled on close.

asyncio keeps only a weak reference to a task, and an exception nobody retrieves is reported
late or never; every object here that starts work in the background does it through a TaskSet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class TaskSet:
    def __init__(self, owner: object, expected: tuple[type[BaseException], ...] = ()) -> None:
        self.owner = owner  # its repr names it in the log when a task fails
        self.expected = expected  # failures reported elsewhere (e.g. as a TwilioError event)
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, self.expected):
            log.error("%r: background task failed", self.owner, exc_info=exc)

    def cancel(self) -> None:
        """Cancel every task but the one calling (it may be closing its own owner)."""
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()

    async def wait(self, timeout: float) -> None:
        """Let the tasks running now finish (at most ``timeout`` seconds)."""
        pending = [t for t in self._tasks if t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def __len__(self) -> int:
        return len(self._tasks)


async def first_set(events: Iterable[asyncio.Event], timeout: float | None) -> None:
    """Return when any of the events is set, or when ``timeout`` runs out (no exception)."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
