"""Counting what clients do, for the exchange's limits ([limits] in exchange.toml).

``OncePerMinute`` keeps a refusal that a client can repeat at will (a socket over the cap, a
register over the cap, a malformed frame) to one log line per key (an address, an identity) a
minute, however fast the client retries. ``Window`` counts events of one session over the last
minute (bad frames, feedback posts).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable

PERIOD = 60.0  # seconds: the window of every rate limit here, and of the log's quiet time


class OncePerMinute:
    """Log the first of a kind of event per key, then at most one line a minute per key, with
    how many were not logged."""

    MAX_KEYS = 1024  # keys remembered; the oldest is forgotten first (it may log again)

    def __init__(self, logger: logging.Logger, level: int = logging.WARNING,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._level = level
        self._clock = clock
        self._keys: collections.OrderedDict[str, list[float | int]] = collections.OrderedDict()

    def __call__(self, key: str, message: str, *args: object) -> bool:
        """Log ``message % args`` unless ``key`` was logged within the minute; True if logged."""
        now = self._clock()
        entry = self._keys.get(key)
        if entry is not None and now - entry[0] < PERIOD:
            entry[1] += 1
            return False
        unlogged = int(entry[1]) if entry is not None else 0
        if unlogged:
            self._log.log(self._level, message + " (and %d more like it since)", *args,
                          unlogged)
        else:
            self._log.log(self._level, message, *args)
        self._keys[key] = [now, 0]
        self._keys.move_to_end(key)
        while len(self._keys) > self.MAX_KEYS:
            self._keys.popitem(last=False)
        return True


class Window:
    """Events in the last PERIOD seconds, up to a limit: ``add`` is False once over it."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._times: collections.deque[float] = collections.deque(maxlen=limit + 1)

    def add(self) -> bool:
        now = self._clock()
        while self._times and now - self._times[0] >= PERIOD:
            self._times.popleft()
        self._times.append(now)
        return len(self._times) <= self.limit
