"""piphone/backoff.py: the one formula every retry loop uses, and dtmf.py's pauses."""

from __future__ import annotations

import asyncio
import random

import pytest

from piphone import dtmf
from piphone.backoff import Backoff

from ..virtual_clock import virtual_clock


def test_steady_is_the_same_pause_every_time():
    poll = Backoff.steady(0.5)
    assert [poll.next() for _ in range(5)] == [0.5] * 5


def test_growth_cap_and_jitter_stay_in_bounds():
    backoff = Backoff(first=0.05, factor=1.5, cap=0.5, jitter=0.2, rng=random.Random(3))
    for attempt in range(12):
        base = min(0.5, 0.05 * 1.5 ** attempt)
        assert base * 0.8 <= backoff.delay(attempt) <= base * 1.2
    assert [Backoff(first=1, factor=2, cap=5, jitter=0).delay(n) for n in range(5)] == [
        1, 2, 4, 5, 5]


def test_next_counts_attempts_and_reset_starts_over():
    backoff = Backoff(first=1, factor=2, cap=100, jitter=0)
    assert [backoff.next() for _ in range(3)] == [1, 2, 4] and backoff.attempt == 3
    backoff.reset()
    assert backoff.next() == 1


def test_nonsense_is_refused():
    for bad in ({"first": -1}, {"cap": -1}, {"factor": 0}, {"jitter": 1.5}):
        with pytest.raises(ValueError):
            Backoff(**bad)


@virtual_clock
async def test_digits_wait_half_a_second_per_w():
    loop = asyncio.get_running_loop()
    sent: list[tuple[str, float]] = []
    await dtmf.send_with_pauses("12ww3w", lambda group: sent.append((group, loop.time())))
    assert sent == [("12", 0.0), ("3", 1.0)] and loop.time() == 1.5
    assert dtmf.DIGITS.fullmatch("0123456789*#w") and not dtmf.DIGITS.fullmatch("12a")
