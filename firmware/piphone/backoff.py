"""The pause before the next try, for every loop in piphone that retries.

One formula: ``first * factor ** attempt``, at most ``cap``, then spread by a random share of
up to ``jitter`` either way (so that phones cut off together do not all come back at once).
Each loop keeps its own numbers:

- signaling (voice/signaling.py): Twilio's SDK's, factor 2 and jitter 0.4, capped at 20 s
  (at 1 s while a call waits to resume);
- media reconnection (voice/reconnect.py, ``ReconnectSettings``): short pauses between
  attempts, first 0.05 s, factor 1.5, at most 0.5 s, jitter 0.2;
- registration, ALSA reopen (audio/alsa.py), the card poll (audio/devices.py): a steady
  interval (``Backoff.steady``: factor 1, no jitter).

A bottom-layer module (like errors.py): voice and audio both import it, and it imports
nothing of piphone.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays for successive attempts; ``next()`` counts them, ``reset()`` starts over."""

    def __init__(self, first: float = 0.1, cap: float = 20.0, factor: float = 2.0,
                 jitter: float = 0.4, rng: random.Random | None = None) -> None:
        if first < 0 or cap < 0 or factor <= 0 or not 0 <= jitter <= 1:
            raise ValueError("Backoff needs first, cap >= 0 s, factor > 0, 0 <= jitter <= 1")
        self.first = first  # seconds before the second try
        self.cap = cap  # seconds at most (before jitter)
        self.factor = factor  # growth per attempt (1: a steady interval)
        self.jitter = jitter  # +- share of the delay chosen at random
        self.attempt = 0
        self._rng = rng or random.Random()

    @classmethod
    def steady(cls, interval: float) -> Backoff:
        """The same pause every time: a poll or a retry with no reason to slow down."""
        return cls(first=interval, cap=interval, factor=1.0, jitter=0.0)

    def delay(self, attempt: int) -> float:
        """The pause after failed attempt number ``attempt`` (0 for the first failure)."""
        base = min(self.cap, self.first * self.factor ** attempt)
        if not self.jitter:
            return base
        return base * (1 + self.jitter * (2 * self._rng.random() - 1))

    def next(self) -> float:
        """The next pause (and count the attempt)."""
        pause = self.delay(self.attempt)
        self.attempt += 1
        return pause

    def reset(self) -> None:
        self.attempt = 0

    def __repr__(self) -> str:
        return (f"Backoff(first={self.first}, cap={self.cap}, factor={self.factor}, "
                f"jitter={self.jitter}, attempt={self.attempt})")
