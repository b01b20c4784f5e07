"""pcm.py's ringback (what the exchange plays to a party it transfers, exchange/transfers.py):
the phones' ringback, frame by frame; and the pacer that lets missed frames go."""

from __future__ import annotations

import numpy as np

from piphone import pcm
from piphone.audio.tones import RINGBACK, render
from piphone.pcm import SAMPLE_RATE, SAMPLES_PER_FRAME, Pacer, Ringback, rms


def test_ringback_is_the_phones_ringback_two_seconds_on_four_off():
    ringback = Ringback()
    frames = np.concatenate([ringback.frame() for _ in range(6 * 50 + 50)])  # 7 s
    assert len(ringback.frame()) == SAMPLES_PER_FRAME
    on, off, again = frames[:2 * SAMPLE_RATE], frames[2 * SAMPLE_RATE:6 * SAMPLE_RATE], \
        frames[6 * SAMPLE_RATE:]
    assert rms(off) == 0 and rms(again) > 1000  # the cadence starts over after 6 s
    spectrum = np.abs(np.fft.rfft(on.astype(np.float64)))
    peaks = sorted(np.argsort(spectrum)[-2:] * SAMPLE_RATE / len(on))
    assert peaks == [440.0, 480.0] == list(RINGBACK.freqs)
    assert RINGBACK.pattern == (2.0, 4.0)
    # as loud as the phone's own (audio/tones.py), the same peak level
    phone = render(RINGBACK, 2.0)
    assert abs(np.abs(on).max() - np.abs(phone).max()) / np.abs(phone).max() < 0.02


async def test_a_pacer_lets_the_frames_nobody_ticked_for_go(monkeypatch):
    now = [100.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(pcm.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(pcm.asyncio, "sleep", sleep)
    pacer = Pacer()
    pacer.skip_ahead()  # not started: nothing to let go
    assert pacer.frames == 0
    assert await pacer.tick() == 0  # started at 100.0
    now[0] = 160.0  # a minute nobody ticked (an Outbox that relayed)
    pacer.skip_ahead()
    assert await pacer.tick() == 3001  # the next frame due, not a burst of 3000 missed ones
    assert len(waits) == 1 and abs(waits[0] - pcm.PTIME) < 1e-6
