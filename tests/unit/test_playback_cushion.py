"""Playback's adaptive cushion and its catch-up, driven period by period (no device: the
playback thread's own step, ``_next_block``, called as the device would)."""

from __future__ import annotations

import numpy as np
import pytest

from piphone.audio import alsa
from piphone.audio.alsa import Playback

FRAME = np.full(960, 1000, np.int16)  # 20 ms: four 5 ms periods


def play(playback: Playback, frames: int, *, late_every: int = 0) -> None:
    """``frames`` 20 ms frames arriving at the device's pace; every ``late_every``-th one a
    period late (an underrun, then a period more in the buffer from then on)."""
    per_frame = 960 // playback.period
    for i in range(frames):
        late = late_every and i % late_every == late_every - 1
        if late:
            playback._next_block()  # the device wants a period before the frame is in
        playback.write(FRAME)
        for _ in range(per_frame - (1 if late else 0)):
            playback._next_block()


@pytest.fixture
def playback() -> Playback:
    made = Playback("null")  # never started: the test is the device
    assert (made.period_ms, made.periods, made.period) == (5, 3, 240)  # the defaults
    return made


def test_on_time_frames_keep_no_cushion_and_drop_nothing(playback):
    play(playback, 200)
    assert playback.cushion == 0 and playback.target_depth == 1
    assert playback.underruns == playback.skipped == playback.dropped == 0


def test_an_underrun_grows_the_cushion_and_catch_up_keeps_it(playback):
    play(playback, 10)
    play(playback, 1, late_every=1)  # one late frame: one underrun
    assert playback.underruns == 1 and playback.cushion == 1
    play(playback, 100)  # 2 s: four catch-up windows
    # the period the underrun put in stays as the cushion: nothing is dropped
    assert playback.skipped == 0 and playback.cushion == 1


def test_repeated_lateness_settles_instead_of_cycling(playback):
    """A frame a period late every 200 ms: without a cushion each would be an underrun and a
    glide; the cushion grows once and then absorbs them all."""
    play(playback, 250, late_every=10)  # 5 s
    assert playback.cushion == 1
    assert playback.underruns == 1 and playback.skipped == 0


def stall(playback: Playback, frames: int) -> None:
    """``frames`` frames come late, then all at once: the device takes their periods while
    nothing arrives (the buffer runs dry), then they are all in the buffer."""
    for _ in range(frames * 960 // playback.period):
        playback._next_block()
    for _ in range(frames):
        playback.write(FRAME)


def test_calm_shrinks_the_cushion_and_catch_up_then_drops_a_period(playback, monkeypatch):
    monkeypatch.setattr(alsa, "CALM_MS", 2000)
    play(playback, 10)
    for _ in range(3):  # three stalls, each an underrun: a cushion of three periods
        stall(playback, 1)
        play(playback, 50)  # 1 s: what it put in beyond the cushion is caught up
    assert playback.cushion == 3 and playback.underruns == 3
    caught_up = playback.skipped
    # each stall put in 20 ms of silence less what the cushion had (0, 1, 2 periods), and
    # catch-up left out all of it but the period the cushion grew by: 3 + 2 + 1
    assert caught_up == 6
    play(playback, 500)  # 10 s of calm: a period less every 2 s, each dropped by catch-up
    assert playback.cushion == 0 and playback.skipped == caught_up + 3
    assert playback.underruns == 3 and playback.dropped == 0


def test_the_cushion_is_bounded(playback):
    play(playback, 10)
    for _ in range(20):
        play(playback, 1, late_every=1)
        playback._next_block()  # and drained: every frame now comes late
    assert playback.cushion == alsa.MAX_CUSHION_MS // playback.period_ms


def test_a_burst_above_the_cushion_is_dropped_in_one_go(playback):
    play(playback, 10)
    play(playback, 1, late_every=1)  # cushion 1
    for _ in range(2):  # a 40 ms burst
        playback.write(FRAME)
    play(playback, 50)
    assert playback.skipped == 8 and playback.cushion == 1 and playback.dropped == 0
