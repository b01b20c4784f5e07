"""audio/tones.py: frequencies by FFT, cadence timing to the sample, click-free edges, phase
continuity across frames, DTMF pairs, saturation in mix."""

from __future__ import annotations

import numpy as np
import pytest

from piphone.audio import tones
from piphone.audio.tones import (
    BUSY,
    DIAL_TONE,
    RECONNECTING,
    RING,
    RINGBACK,
    TonePlayer,
    ToneSpec,
    cadence_envelope,
    dtmf,
    dtmf_freqs,
    dtmf_sequence,
    mix,
    render,
    ring_spec,
)

RATE = 48000
DTMF_ALL = (697, 770, 852, 941, 1209, 1336, 1477, 1633)


def spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude spectrum at 1 Hz resolution (zero-padded to at least 1 s), Hann windowed."""
    n = max(len(x), RATE)
    mag = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x)), n))
    return np.fft.rfftfreq(n, 1 / RATE), mag


def peak_freqs(x: np.ndarray, k: int) -> list[float]:
    """The k strongest local maxima, in Hz, sorted by frequency."""
    freqs, mag = spectrum(x)
    local = np.flatnonzero((mag[1:-1] > mag[:-2]) & (mag[1:-1] >= mag[2:])) + 1
    top = local[np.argsort(mag[local])[-k:]]
    return sorted(float(freqs[i]) for i in top)


def magnitude_at(x: np.ndarray, *hz: float) -> list[float]:
    freqs, mag = spectrum(x)
    return [float(mag[np.argmin(np.abs(freqs - f))]) for f in hz]


def analytic(spec: ToneSpec, n: int) -> np.ndarray:
    """The tone computed from scratch for samples 0..n-1: amplitude * envelope * mean(cos)."""
    t = np.arange(n)
    wave = np.mean([np.cos(2 * np.pi * f * t / RATE) for f in spec.freqs], axis=0)
    env = cadence_envelope(spec.pattern, 0, n, RATE, spec.fade_ms)
    amp = 32767 * 10 ** (spec.level_dbfs / 20)
    return np.rint(amp * env * wave)


# --- frequencies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [(RING, (440, 480)), (RINGBACK, (440, 480)), (DIAL_TONE, (350, 440)), (BUSY, (480, 620))],
)
def test_call_progress_tones_have_their_frequencies(spec, expected):
    x = render(spec, 0.5)  # inside the first on period of every cadence here
    assert peak_freqs(x, 2) == pytest.approx(expected, abs=3)


def test_custom_ring_frequencies_and_reconnecting_tone():
    uk = ring_spec((400, 450), (0.4, 0.2, 0.4, 2.0))
    assert peak_freqs(render(uk, 0.4), 2) == pytest.approx([400, 450], abs=3)
    assert peak_freqs(render(RECONNECTING, 0.12), 1) == pytest.approx([660], abs=5)


@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_dtmf_has_exactly_its_row_and_column(digit):
    row, col = dtmf_freqs(digit)
    assert row in DTMF_ALL[:4] and col in DTMF_ALL[4:]
    x = dtmf(digit)[: int(0.1 * RATE)]  # the tone part, without the gap
    assert peak_freqs(x, 2) == pytest.approx([row, col], abs=3)
    others = sorted(set(DTMF_ALL) - {row, col})
    at_row, at_col, *at_others = magnitude_at(x, row, col, *others)
    # Both present at the same level (components share the peak equally)...
    assert at_row == pytest.approx(at_col, rel=0.05)
    # ...and no other DTMF frequency is there (Hann sidelobes are > 40 dB down here).
    for hz, m in zip(others, at_others, strict=True):
        assert m < 0.01 * at_row, hz


def test_dtmf_keypad_layout():
    assert dtmf_freqs("1") == (697, 1209)
    assert dtmf_freqs("5") == (770, 1336)
    assert dtmf_freqs("9") == (852, 1477)
    assert dtmf_freqs("*") == (941, 1209)
    assert dtmf_freqs("0") == (941, 1336)
    assert dtmf_freqs("#") == (941, 1477)
    assert dtmf_freqs("D") == dtmf_freqs("d") == (941, 1633)


def test_dtmf_duration_gap_and_sequence():
    x = dtmf("7", duration_s=0.1, gap_s=0.05)
    assert len(x) == 4800 + 2400
    assert not x[4800:].any()
    assert np.count_nonzero(x[:4800]) > 4700
    seq = dtmf_sequence("1w2")
    assert len(seq) == 9600 + 24000 + 9600  # 100 ms tone + 100 ms gap; 'w' is 500 ms
    assert not seq[9600 : 9600 + 24000].any()


def test_warning_chirp_rises_and_beep_is_short_and_quiet():
    c = tones.warning_chirp()
    assert len(c) == int(0.15 * RATE)
    start, end = c[: len(c) // 3], c[-len(c) // 3 :]
    assert 550 < peak_freqs(start, 1)[0] < 850
    assert 950 < peak_freqs(end, 1)[0] < 1250
    beep = tones.mute_beep()
    assert len(beep) <= 0.2 * RATE
    assert peak_freqs(beep, 1) == pytest.approx([440], abs=5)
    assert np.abs(beep).max() == pytest.approx(32767 * 10 ** (-18 / 20), rel=0.01)


def test_level_is_the_peak_of_the_whole_tone():
    x = render(DIAL_TONE, 1.0)  # 350 and 440 Hz are both in phase at t = 0 and t = 1 s
    assert np.abs(x).max() == pytest.approx(32767 * 10 ** (-12 / 20), rel=0.002)
    loud = render(ToneSpec((480, 620), level_dbfs=0.0), 1.0)
    assert np.abs(loud.astype(np.int32)).max() <= 32767  # 0 dBFS dual tone does not clip


# --- cadence timing ---------------------------------------------------------------------------


def test_ring_cadence_is_right_to_the_sample():
    n = 6 * RATE
    env = cadence_envelope(RING.pattern, 0, n, RATE, RING.fade_ms)
    assert np.count_nonzero(env) == 2 * RATE  # 2 s on in 6 s, every on-sample counted
    assert np.all(env[: 2 * RATE] > 0) and not env[2 * RATE :].any()
    x = render(RING, 6.0)
    assert len(x) == n
    assert not x[2 * RATE :].any()  # the off period is exact silence
    on = np.flatnonzero(x)
    assert on[0] < 10 and 2 * RATE - 10 <= on[-1] < 2 * RATE  # only fade tails round to 0


def test_cadence_repeats_and_double_ring_pattern():
    busy = cadence_envelope(BUSY.pattern, 0, 6 * RATE, RATE, BUSY.fade_ms)
    assert np.count_nonzero(busy) == 3 * RATE
    uk = ring_spec((400, 450), (0.4, 0.2, 0.4, 2.0))
    env = cadence_envelope(uk.pattern, 0, 6 * RATE, RATE, uk.fade_ms)
    on = env > 0
    # on 0-0.4 s, off 0.4-0.6, on 0.6-1.0, off 1.0-3.0, then again from 3.0 s
    edges = np.flatnonzero(np.diff(on.astype(np.int8))) + 1
    assert edges.tolist() == [19200, 28800, 48000, 144000, 163200, 172800, 192000]


def test_cadence_window_starting_mid_pattern():
    whole = cadence_envelope(RING.pattern, 0, 12 * RATE, RATE, 5.0)
    part = cadence_envelope(RING.pattern, 95_000, 300_000, RATE, 5.0)
    np.testing.assert_array_equal(part, whole[95_000:395_000])


# --- clicks and continuity --------------------------------------------------------------------


def edge_jump(x: np.ndarray, edges: list[int], width: int = 480) -> int:
    d = np.abs(np.diff(x.astype(np.int32)))
    return max(int(d[max(0, e - width) : e + width].max()) for e in edges)


def test_no_clicks_at_cadence_edges():
    x = render(BUSY, 2.0)  # edges at 0, 0.5, 1.0, 1.5 s
    edges = [0, RATE // 2, RATE, 3 * RATE // 2]
    on_starts = [0, RATE]
    steady = int(np.abs(np.diff(x[6000:18000].astype(np.int32))).max())  # mid on period
    assert edge_jump(x, edges) <= steady
    peak = np.abs(x).max()
    for e in on_starts:
        # on/off boundaries themselves are near zero (no step into or out of silence)
        assert abs(int(x[e])) < 0.01 * peak  # first sample of an on period
        assert abs(int(x[e + RATE // 2 - 1])) < 0.01 * peak  # last sample of an on period
    # The bound is meaningful: the same tone without fades does click there.
    hard = render(ToneSpec(BUSY.freqs, BUSY.pattern, fade_ms=0.0), 2.0)
    assert edge_jump(hard, edges) > 3 * steady


def test_frames_are_phase_continuous_and_match_the_formula():
    player = TonePlayer(RING)
    frames = [next(player) for _ in range(350)]  # 7 s: across on->off->on
    assert all(len(f) == 960 and f.dtype == np.int16 for f in frames)
    x = np.concatenate(frames).astype(np.int64)
    expected = analytic(RING, len(x))
    assert np.abs(x - expected).max() <= 1


def test_odd_read_sizes_join_seamlessly():
    player = TonePlayer(DIAL_TONE)
    sizes = [1, 7, 333, 960, 4999, 2, 10_000]
    x = np.concatenate([player.read(n) for n in sizes]).astype(np.int64)
    assert player.position == sum(sizes)
    assert np.abs(x - analytic(DIAL_TONE, len(x))).max() <= 1
    player.reset()
    assert np.array_equal(player.read(500), render(DIAL_TONE, 500 / RATE))


def test_dial_tone_is_continuous():
    frames = np.stack([next(f) for f in [TonePlayer(DIAL_TONE)] * 100])
    assert (np.abs(frames).max(axis=1) > 0.5 * 32767 * 10 ** (-12 / 20)).all()


def test_other_rates_and_frame_sizes():
    p = TonePlayer(BUSY, rate=16000, frame_ms=10)
    assert len(next(p)) == 160
    x = render(BUSY, 1.0, rate=16000)
    assert np.count_nonzero(cadence_envelope(BUSY.pattern, 0, 16000, 16000, 5.0)) == 8000
    assert not x[8000:].any()


# --- invalid input ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["x", "11", "", "w", " ", "E", 5])
def test_unknown_dtmf_character(bad):
    with pytest.raises(ValueError, match="DTMF"):
        dtmf(bad)


def test_bad_sequence_fails_before_rendering():
    with pytest.raises(ValueError, match="'x'"):
        dtmf_sequence("12x")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ((2.0,), "pairs"),
        ((2.0, 4.0, 1.0), "pairs"),
        ((2.0, -4.0), "positive"),
        ((2.0, 0.0), "positive"),
        ((float("nan"), 1.0), "positive"),
        (("2", 4.0), "positive"),
        ((), "at least one"),
    ],
)
def test_bad_cadence(pattern, message):
    with pytest.raises(ValueError, match=message):
        ring_spec(pattern=pattern)


def test_bad_tone_parameters():
    with pytest.raises(ValueError, match="frequency"):
        ToneSpec((0,))
    with pytest.raises(ValueError, match="frequency"):
        ToneSpec((30000,))
    with pytest.raises(ValueError, match="frequency"):
        ToneSpec(())
    with pytest.raises(ValueError, match="level"):
        ToneSpec((440,), level_dbfs=3.0)
    with pytest.raises(ValueError, match="shorter than one sample"):
        TonePlayer(ToneSpec((440,), (1e-6, 1.0)))
    with pytest.raises(ValueError, match="frequency"):
        TonePlayer(DIAL_TONE, rate=800)  # 440 Hz is above Nyquist at 800 Hz
    with pytest.raises(ValueError, match="duration"):
        tones.tone((440,), -1.0)


# --- mix --------------------------------------------------------------------------------------


def test_mix_adds_and_saturates():
    a = np.array([1000, 30000, -30000, 32767, -32768, 0], dtype=np.int16)
    b = np.array([-500, 10000, -10000, 1, -1, -7], dtype=np.int16)
    out = mix(a, b)
    assert out.dtype == np.int16
    assert out.tolist() == [500, 32767, -32768, 32767, -32768, -7]


def test_mix_pads_the_shorter_and_checks_types():
    a = np.full(960, 100, dtype=np.int16)
    beep = np.full(10, 5, dtype=np.int16)
    out = mix(a, beep)
    assert len(out) == 960 and out[:10].tolist() == [105] * 10 and (out[10:] == 100).all()
    assert np.array_equal(mix(beep, a), out)
    with pytest.raises(TypeError):
        mix(a, a.astype(np.float32))


def test_tone_player_set_level_keeps_phase_and_cadence():
    spec = tones.ring_spec(pattern=(0.05, 0.05))
    loud, reference = tones.TonePlayer(spec), tones.TonePlayer(spec)
    assert np.array_equal(loud.read(1234), reference.read(1234))
    loud.set_level(spec.level_dbfs - 6)
    softer, same = loud.read(9600).astype(float), reference.read(9600).astype(float)
    # the same waveform and gaps, 6 dB down (x0.501), within int16 rounding
    assert np.allclose(softer, same * 10 ** (-6 / 20), atol=1.0)
