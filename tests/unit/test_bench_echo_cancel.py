"""scripts/bench/echo_cancel.py's measures: what it prints against the goals must mean what it
says (the bench itself runs in real time on the ALSA rig, outside the suite)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from .. import speechlike as sl

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "echo_cancel.py"
spec = importlib.util.spec_from_file_location("echo_cancel_bench", BENCH)
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench  # its dataclasses look their module up
spec.loader.exec_module(bench)

PERIOD = 960


def blocks(x: np.ndarray) -> np.ndarray:
    return x[: len(x) // PERIOD * PERIOD].reshape(-1, PERIOD).astype(np.float64)


def test_attenuation_is_the_near_ends_gain_not_its_phase_nor_the_residual():
    voice, _ = sl.speech(4, 2)
    near = blocks(voice)
    residual = blocks(sl.white_noise(4, 9, level_dbfs=-30))
    assert bench.attenuation(near * 0.5 + residual, near) == pytest.approx(6.02, abs=0.3)
    # an all-pass change of phase (the high-pass filter's, say) loses nothing
    spectrum = np.fft.rfft(voice)
    shifted = np.fft.irfft(spectrum * np.exp(1j * 0.8), len(voice))
    assert bench.attenuation(blocks(shifted), near) == pytest.approx(0.0, abs=0.3)
    assert bench.attenuation(residual, near) > 15  # nothing of the near end got through


def test_convergence_is_when_the_erle_reaches_20_db_and_holds_it():
    n = int(bench.SINGLE * 50)
    t = np.arange(n) / 50
    single = np.ones(n, bool)
    mic = np.full((n, PERIOD), 1000.0)
    out = mic * np.where(t < 0.6, 1.0, 10 ** (-30 / 20))[:, None]  # 0 dB, then 30 dB
    assert bench.convergence(t, single, mic, out) == pytest.approx(0.72, abs=0.25)
    relapse = out.copy()
    relapse[(t >= 0.72) & (t < 1.2)] = mic[(t >= 0.72) & (t < 1.2)]  # not held: later
    assert bench.convergence(t, single, mic, relapse) == pytest.approx(1.2, abs=0.25)
    assert bench.convergence(t, single, mic, mic) is None  # never


def test_the_stages_own_delay_is_found():
    voice, _ = sl.speech(3, 2)
    near = blocks(voice)
    delayed = blocks(np.concatenate((np.zeros(431), voice[:-431])))
    assert bench.stage_lag(delayed, near, np.ones(len(near), bool)) == 431
    assert np.allclose(bench.shift(delayed, 431)[:-1], near[:-1])


def test_double_talk_loss_is_the_energy_a_moving_gain_lets_through():
    """A suppressor's gain moves from block to block and band to band: the near end loses the
    energy the gain takes, not the square of its average (the measure before said 6 dB for a
    gain of 1 and 0 in turn, which keeps half the energy: 3 dB)."""
    voice, _ = sl.speech(6, 2)
    near = blocks(voice)
    residual = blocks(sl.white_noise(6, 9, level_dbfs=-40))
    gated = near * (np.arange(len(near)) % 2 == 0)[:, None]  # every other block muted
    kept = np.sum(gated ** 2) / np.sum(near ** 2)
    assert bench.attenuation(gated + residual, near) == pytest.approx(
        -10 * np.log10(kept), abs=0.3)
    assert bench.coherent_attenuation(gated, near) == pytest.approx(
        -20 * np.log10(np.sum(gated * near) / np.sum(near ** 2)), abs=0.3)  # about 6 dB
    # a gain that moves across the spectrum: everything above 1 kHz taken out, in one block
    # out of three
    spectrum = np.fft.rfft(near, axis=1)
    cut = spectrum.copy()
    cut[::3, 20:] = 0  # bins of 50 Hz: above 1 kHz
    lowpassed = np.fft.irfft(cut, PERIOD, axis=1)
    truth = -10 * np.log10(np.sum(lowpassed ** 2) / np.sum(near ** 2))
    assert bench.attenuation(lowpassed, near) == pytest.approx(truth, abs=0.5)


def test_the_glue_bench_measures_each_firmware_in_turn():
    """scripts/bench/echo_glue.py as its usage line runs it (two versions, here the same one
    twice, briefly): one line per version and round, each with the tap's and the stage's
    CPU adding up to the total."""
    import re
    import subprocess

    root = Path(__file__).resolve().parents[2]
    firmware = str(root / "firmware")
    out = subprocess.run(
        [sys.executable, str(root / "scripts" / "bench" / "echo_glue.py"), "--firmware",
         firmware, "--firmware", firmware, "--seconds", "3", "--repeat", "2"],
        check=True, capture_output=True, text=True, timeout=120).stdout.splitlines()
    assert len(out) == 4
    for line in out:
        found = re.fullmatch(rf"{re.escape(firmware)}: tap (\S+) stage (\S+) total (\S+) CPU-s/s",
                             line)
        assert found, line
        tap, stage, total = map(float, found.groups())
        assert 0 < tap < stage and total == pytest.approx(tap + stage, abs=2e-5)
