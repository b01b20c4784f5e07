"""pcm.py's levels: dBFS, the SDK's volume and sample-level scales, and the one level meter,
over int16 arrays and over PyAV frames (voice/rtc/frames.py reads them for it)."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest

from piphone.pcm import (
    DBFS_FLOOR,
    FULL_SCALE,
    LevelMeter,
    dbfs,
    level,
    rms,
    rms_dbfs,
    volume,
)
from piphone.voice.rtc.frames import AvFrames, audio_frame

RATE = 48000


def sine(peak: float, hz: float = 1000.0, n: int = 960) -> np.ndarray:
    return np.rint(peak * np.sin(2 * np.pi * hz * np.arange(n) / RATE)).astype(np.int16)


# --- dBFS -------------------------------------------------------------------------------------


def test_full_scale_sine_is_about_minus_3_dbfs():
    assert rms_dbfs(sine(32767)) == pytest.approx(-3.01, abs=0.02)


def test_full_scale_square_is_0_dbfs_and_levels_scale_by_20_log10():
    square = np.where(np.arange(960) % 96 < 48, 32767, -32768).astype(np.int16)
    assert rms_dbfs(square) == pytest.approx(0.0, abs=0.01)
    assert rms_dbfs(sine(3276.7)) == pytest.approx(-23.01, abs=0.02)  # 20 dB down
    assert rms_dbfs(sine(327.67)) == pytest.approx(-43.01, abs=0.05)


def test_silence_is_the_floor_not_minus_infinity():
    assert rms_dbfs(np.zeros(960, dtype=np.int16)) == DBFS_FLOOR == -100.0
    assert rms_dbfs(np.zeros(0, dtype=np.int16)) == DBFS_FLOOR
    one_lsb = np.zeros(48000, dtype=np.int16)
    one_lsb[0] = 1  # about -137 dBFS: clamped to the floor
    assert rms_dbfs(one_lsb) == DBFS_FLOOR
    assert dbfs(0.0) == DBFS_FLOOR


def test_levels_refuse_non_int16():
    with pytest.raises(TypeError):
        rms_dbfs(np.zeros(960, dtype=np.float32))


# --- volume event and sample level -----------------------------------------------------------


@pytest.mark.parametrize(
    ("db", "expected"),
    [
        (-100.0, 0.0),
        (-30.0, 1.0),
        (-65.0, 0.5),
        (-93.0, 0.1),
        (-120.0, 0.0),
        (0.0, 1.0),
        (-29.9, 1.0),
        (float("-inf"), 0.0),
    ],
)
def test_volume_maps_minus_100_to_minus_30_dbfs_linearly_and_clamps(db, expected):
    assert volume(FULL_SCALE * 10 ** (db / 20)) == pytest.approx(expected, abs=1e-12)


def test_sample_level_is_the_rms_amplitude_clamped():
    assert level(0.0) == 0 and level(0.4) == 0 and level(1000.4) == 1000
    assert level(32767.0) == level(40000.0) == 32767
    assert level(rms(sine(32767))) == pytest.approx(32767 / math.sqrt(2), abs=1)


# --- the meter --------------------------------------------------------------------------------


def test_the_meter_reads_pyav_frames_as_it_reads_int16_arrays():
    """A call meters PyAV frames (what it sends and hears) without converting each one: the
    reading is the one of the same samples as an array, mono or stereo, and 0 for formats
    that are not int16."""
    for samples in (sine(8000), sine(100, 440), np.full(960, -32768, np.int16)):
        pcm, frames = LevelMeter(), LevelMeter(reader=AvFrames())
        pcm.push(samples)
        frames.push(audio_frame(samples, 0))
        assert frames.read() == pytest.approx(pcm.read(), rel=1e-6)
    stereo = av.AudioFrame.from_ndarray(np.repeat(sine(8000), 2).reshape(1, -1), format="s16",
                                        layout="stereo")
    stereo.sample_rate = RATE
    meter = LevelMeter(reader=AvFrames())
    meter.push(stereo)
    assert meter.read() == pytest.approx(rms(sine(8000)), rel=1e-4)
    floats = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.float32), format="flt",
                                        layout="mono")
    floats.sample_rate = RATE
    meter = LevelMeter(reader=AvFrames())
    meter.push(floats)
    assert meter.read() == 0.0


def test_the_meter_ticks_on_the_audio_clock_of_either_kind_of_frame():
    ticks: list[str] = []
    pcm = LevelMeter(lambda: ticks.append("pcm"), 0.05)
    frames = LevelMeter(lambda: ticks.append("av"), 0.05, reader=AvFrames())
    for n in range(10):  # 200 ms of 20 ms frames: ticks after 20, 40, 100, 140 and 200 ms
        pcm.push(sine(1000))
        frames.push(audio_frame(sine(1000), n * 960))
    assert ticks.count("pcm") == ticks.count("av") == 5
