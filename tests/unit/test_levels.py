"""audio/levels.py: dBFS, the SDK's volume and sample level scales, the level meter."""

from __future__ import annotations

import numpy as np
import pytest

from piphone.audio.levels import (
    DBFS_FLOOR,
    Level,
    LevelMeter,
    analyser_bytes,
    analyser_magnitudes,
    rms_dbfs,
    sample_level,
    volume_value,
)

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


def test_levels_refuse_non_int16():
    with pytest.raises(TypeError):
        rms_dbfs(np.zeros(960, dtype=np.float32))


# --- volume event -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dbfs", "volume"),
    [
        (-100.0, 0.0),
        (-30.0, 1.0),
        (-65.0, 0.5),
        (-93.0, 0.1),
        (-120.0, 0.0),
        (0.0, 1.0),
        (-29.9, 1.0),
        (float("-inf"), 0.0),
        (float("nan"), 0.0),
    ],
)
def test_volume_value_maps_minus_100_to_minus_30_linearly_and_clamps(dbfs, volume):
    assert volume_value(dbfs) == pytest.approx(volume, abs=1e-12)


# --- sample level (the SDK's AnalyserNode, fftSize 32, -127..0 dB) -----------------------------


def test_analyser_byte_scale():
    # floor(255 * (dB + 127) / 127): 0 dB -> 255, -63.5 dB -> 127.5 -> 127, below -127 -> 0
    mags = np.array([1.0, 10 ** (-63.5 / 20), 10 ** (-130 / 20), 0.0, 2.0])
    assert analyser_bytes(mags, -127.0, 0.0).tolist() == [255, 127, 0, 0, 255]
    # The volume analyser's default range: -30 dB is the top, -100 dB the bottom.
    assert analyser_bytes(np.array([10 ** (-30 / 20), 10 ** (-100 / 20)])).tolist() == [255, 0]
    with pytest.raises(ValueError):
        analyser_bytes(mags, 0.0, -127.0)


def test_sample_level_of_full_scale_dc_matches_the_hand_computed_analyser():
    # Periodic Blackman window over N = 32, |X[k]| = |sum(x w e^-2pi i k n/N)| / N for x = 1:
    # X0 = 0.42, X1 = 0.5 / 2 = 0.25, X2 = 0.08 / 2 = 0.04, X3..X15 = 0.
    # Bytes on -127..0 dB: floor(255 * (127 + 20 log10 X) / 127) = 239, 230, 198, then 0s.
    dc = np.full(960, 32767, dtype=np.int16)
    mags = analyser_magnitudes(dc)
    assert mags[:3] == pytest.approx([0.42, 0.25, 0.04], rel=1e-3)
    assert mags[3:].max() < 1e-9
    assert sample_level(dc) == pytest.approx((239 + 230 + 198) / 16 / 255 * 32767, abs=0.01)


def test_sample_level_silence_range_and_order():
    assert sample_level(np.zeros(960, dtype=np.int16)) == 0.0
    levels = [sample_level(sine(p)) for p in (32767, 3276.7, 327.67, 32.767)]
    assert all(0 < v <= 32767 for v in levels)
    assert levels == sorted(levels, reverse=True) and len(set(levels)) == 4


def test_sample_level_sees_only_the_last_32_samples():
    # As the SDK's analyser does at each tick: a loud start of the frame does not count.
    frame = sine(32767)
    frame[-32:] = 0
    assert sample_level(frame) == 0.0
    short = np.full(16, 32767, dtype=np.int16)  # fewer than 32: preceded by silence
    padded = np.concatenate((np.zeros(100, dtype=np.int16), short))
    assert sample_level(short) == sample_level(padded) > 0


# --- meter ------------------------------------------------------------------------------------


def test_level_meter_keeps_the_latest_frame():
    meter = LevelMeter()
    assert meter.latest == Level(DBFS_FLOOR, 0.0, 0.0)
    quiet = sine(32767 * 10 ** (-60 / 20))  # rms about -63 dBFS
    reading = meter.push(quiet)
    assert meter.latest is reading
    assert reading.dbfs == pytest.approx(-63.01, abs=0.05)
    assert reading.volume == pytest.approx((100 - 63.01) / 70, abs=0.002)
    assert reading.sample == sample_level(quiet) > 0
    meter.push(np.zeros(960, dtype=np.int16))
    assert meter.latest == Level(DBFS_FLOOR, 0.0, 0.0)
    meter.push(sine(32767))
    assert meter.latest.volume == 1.0
    meter.reset()
    assert meter.latest.volume == 0.0
