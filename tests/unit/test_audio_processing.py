"""audio/processing.py: the capture path's echo canceller, noise suppressor and gain control,
on synthetic speech (tests/speechlike.py) fed 20 ms at a time as the capture thread feeds it,
with the reference handed over as a playback thread with a 3 x 5 ms device would."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from piphone.audio import processing
from piphone.audio.processing import (
    CaptureStage,
    EchoReference,
    ProcessingSettings,
    load_backend,
    make_stage,
    reference_margin,
)

from .. import speechlike as sl

RATE = 48_000
BLOCK = 960  # the capture path's 20 ms
DEVICE = 720  # the playback device's 3 periods of 5 ms, in samples
PLAY_PERIOD = 240
ECHO_ONLY = ProcessingSettings(echo_cancellation=True)


def stage(settings: ProcessingSettings, backend: str = "webrtc") -> CaptureStage:
    made = make_stage(settings, playback_periods=3, playback_period_ms=5, backend=backend)
    assert made is not None
    return made


def run(stage: CaptureStage, far: np.ndarray, mic: np.ndarray, *, seed: int = 0,
        jitter: int = 2) -> np.ndarray:
    """Feed ``mic`` block by block; ``far[k]`` plays at sample time k, so the playback thread
    has written it DEVICE samples earlier, late by up to ``jitter`` of its periods at random
    (a thread's wake-ups); each capture block is read when its last sample is in."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(mic)
    written = 0
    for start in range(0, len(mic) - BLOCK + 1, BLOCK):
        now = start + BLOCK
        late = int(rng.integers(0, jitter + 1)) * PLAY_PERIOD
        upto = min(len(far), max(written, (now + DEVICE - late) // PLAY_PERIOD * PLAY_PERIOD))
        for period in range(written, upto, PLAY_PERIOD):
            if stage.reference is not None:
                stage.reference.played(far[period:period + PLAY_PERIOD])
        written = upto
        out[start:start + BLOCK] = stage.process(mic[start:start + BLOCK])
    return out


def active_ratio_db(mic: np.ndarray, out: np.ndarray, mask: np.ndarray) -> float:
    a, b = mic[mask].astype(np.float64), out[mask].astype(np.float64)
    return 10 * np.log10(np.sum(a ** 2) / np.sum(b ** 2))


def lag_of(out: np.ndarray, part: np.ndarray) -> int:
    """The stage's own delay: where ``out`` lines up best with ``part`` of its input."""
    o, p = out.astype(np.float64), part.astype(np.float64)
    return int(np.argmax([np.dot(o[2000 + k:-2000 + k], p[2000:-2000]) for k in range(1200)]))


def scene(seconds: float, *, delay_ms: float, echo_db: float, near_from: float | None = None,
          near_dbfs: float = -20.0):
    far, far_talk = sl.speech(seconds, 1)
    echo = sl.echo_path(far, delay_ms=delay_ms, gain_db=echo_db, impulse=sl.room_impulse(3))
    near = np.zeros_like(far)
    near_talk = np.zeros(len(far), bool)
    if near_from is not None:
        voice, talk = sl.speech(seconds, 2, level_dbfs=near_dbfs, pitch=(170, 250),
                                formants=(700, 1800, 2900))
        cut = int(near_from * RATE)
        near[cut:], near_talk[cut:] = voice[cut:], talk[cut:]
    mic = echo + near + sl.white_noise(seconds, 4, level_dbfs=-70)
    # where the echo is loud enough to measure (well above the microphone's own noise)
    echo_on = np.convolve(echo ** 2, np.ones(480) / 480, "same") > (32768 * 10 ** -2.5) ** 2
    return sl.to_int16(far), sl.to_int16(mic), near, near_talk & echo_on, echo_on & ~near_talk


# --- the stage on synthetic speech --------------------------------------------------------------


@pytest.mark.parametrize("delay_ms", [40, 150])
def test_echo_is_removed_on_single_talk(delay_ms):
    far, mic, _, _, echo_on = scene(10, delay_ms=delay_ms, echo_db=-10)
    processed = run(stage(ECHO_ONLY), far, mic)
    after = np.arange(len(mic)) >= 2 * RATE  # converged
    assert active_ratio_db(mic, processed, echo_on & after) >= 25.0


def test_the_reference_delay_is_found_beyond_the_device():
    """The echo arrives 300 ms after the pairing (a long path, a slow device): AEC3's own
    delay estimator finds it; without a reference nothing would be removed."""
    far, mic, _, _, echo_on = scene(10, delay_ms=300, echo_db=-10)
    processed = run(stage(ECHO_ONLY), far, mic, jitter=3)
    after = np.arange(len(mic)) >= 2 * RATE
    assert active_ratio_db(mic, processed, echo_on & after) >= 25.0


def test_near_end_speech_is_kept_in_double_talk():
    far, mic, near, double_talk, _ = scene(16, delay_ms=80, echo_db=-15, near_from=6)
    processed = run(stage(ECHO_ONLY), far, mic)
    lag = lag_of(processed[8 * RATE:], near[8 * RATE:])
    shifted = np.concatenate((processed[lag:], np.zeros(lag, np.int16))).astype(np.float64)
    talk = double_talk & (np.arange(len(mic)) >= 8 * RATE)
    gain = np.dot(shifted[talk], near[talk]) / np.dot(near[talk], near[talk])
    assert -20 * np.log10(gain) <= 4.0  # the goal, 3 dB at -10 dB: missed (README)


def test_steady_noise_is_reduced():
    noise = sl.to_int16(sl.steady_noise(6, 7, level_dbfs=-45))
    processed = run(stage(ProcessingSettings(noise_suppression=True)), noise, noise)
    tail = slice(2 * RATE, None)
    assert sl.level_dbfs(noise[tail]) - sl.level_dbfs(processed[tail]) >= 10.0


def test_auto_gain_raises_a_quiet_talker():
    voice, _ = sl.speech(12, 5, level_dbfs=-42)
    quiet = sl.to_int16(voice)
    processed = run(stage(ProcessingSettings(auto_gain=True)), quiet, quiet)
    tail = slice(8 * RATE, None)
    assert sl.level_dbfs(processed[tail]) - sl.level_dbfs(quiet[tail]) >= 6.0


def test_the_stage_reports_what_it_sees_each_second():
    far, mic, _, _, _ = scene(6, delay_ms=80, echo_db=-10)
    processing_stage = stage(ECHO_ONLY)
    run(processing_stage, far, mic)
    figures = processing_stage.figures
    assert figures is not None and figures.far_active > 0.5
    assert figures.echo_return_loss == pytest.approx(10, abs=4)  # the echo path's -10 dB
    assert figures.echo_return_loss_enhancement >= 20
    assert figures.residual_echo_level < -50
    assert processing_stage.cpu_seconds > 0 and processing_stage.blocks == len(mic) // BLOCK


def test_no_far_end_no_echo_figures():
    quiet = np.zeros(RATE * 2, np.int16)
    processing_stage = stage(ECHO_ONLY)
    run(processing_stage, quiet, sl.to_int16(sl.white_noise(2, 1, level_dbfs=-60)))
    figures = processing_stage.figures
    assert figures is not None and figures.far_active == 0
    assert figures.echo_return_loss_enhancement is None and figures.residual_echo_level is None


def test_speexdsp_fallback_cancels_echo():
    far, mic, _, _, echo_on = scene(12, delay_ms=40, echo_db=-10)
    processed = run(stage(ECHO_ONLY, backend="speex"), far, mic)
    after = np.arange(len(mic)) >= 6 * RATE  # speexdsp converges in seconds, not one
    assert active_ratio_db(mic, processed, echo_on & after) >= 6.0


def test_speexdsp_fallback_reduces_steady_noise():
    noise = sl.to_int16(sl.steady_noise(4, 7, level_dbfs=-45))
    processed = run(stage(ProcessingSettings(noise_suppression=True), "speex"), noise, noise)
    assert sl.level_dbfs(noise[RATE:]) - sl.level_dbfs(processed[RATE:]) >= 6.0


# --- nothing when off, nothing loaded until asked -----------------------------------------------


def test_everything_off_is_no_stage():
    assert make_stage(ProcessingSettings(), playback_periods=3, playback_period_ms=5) is None
    assert not ProcessingSettings().enabled and ProcessingSettings.handsfree().enabled


def test_the_libraries_load_only_with_a_stage():
    code = ("import sys\n"
            "from piphone.audio import alsa, processing\n"
            "s = processing.make_stage(processing.ProcessingSettings(), playback_periods=3,"
            " playback_period_ms=5)\n"
            "assert s is None\n"
            "assert 'pywebrtc_audio' not in sys.modules, 'webrtc loaded'\n"
            "assert 'piphone.audio.speexdsp' not in sys.modules, 'speexdsp loaded'\n"
            "processing.make_stage(processing.ProcessingSettings.handsfree(),"
            " playback_periods=3, playback_period_ms=5)\n"
            "assert 'pywebrtc_audio' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_echo_cancellation_needs_a_reference():
    with pytest.raises(ValueError, match="EchoReference"):
        CaptureStage(ECHO_ONLY, load_backend(ECHO_ONLY, "webrtc"), None)


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="webrtc or speex"):
        load_backend(ECHO_ONLY, "acme")


def test_auto_falls_back_to_speexdsp_without_webrtc(monkeypatch, caplog):
    def missing(*_args, **_kwargs):
        raise processing.ProcessingUnavailable("pywebrtc-audio is not installed")

    monkeypatch.setattr(processing, "WebRtcBackend", missing)
    assert load_backend(ECHO_ONLY, "auto").name == "speex"
    assert "speexdsp" in caplog.text
    with pytest.raises(processing.ProcessingUnavailable):
        load_backend(ECHO_ONLY, "webrtc")


# --- the reference: pairing played audio with captured audio ------------------------------------


def counting(n: int, start: int = 0) -> np.ndarray:
    return (np.arange(start, start + n) % 30000 + 1).astype(np.int16)


def test_the_pairing_holds_whatever_the_threads_timing():
    """Played in bursts and late, taken in 20 ms blocks: each microphone block is paired with
    the played samples that follow the previous block's, never a jump."""
    ref = EchoReference(margin=reference_margin(3, 5))
    rng = np.random.default_rng(3)
    signal = counting(RATE * 3)
    written = taken_to = 0
    first = None
    for block in range(100):
        now = (block + 1) * BLOCK
        upto = (now + DEVICE - int(rng.integers(0, 3)) * PLAY_PERIOD) // PLAY_PERIOD
        upto *= PLAY_PERIOD
        for period in range(written, upto, PLAY_PERIOD):
            ref.played(signal[period:period + PLAY_PERIOD])
        written = max(written, upto)
        got = ref.take(BLOCK)
        if first is None:
            first = int(got[-1]) - 1  # index of the block's last sample in what was played
            assert first == written - ref.margin - 1
            taken_to = first + 1
            continue
        assert np.array_equal(got, signal[taken_to:taken_to + BLOCK])
        taken_to += BLOCK
    assert ref.realigned == 0 and ref.short == 0


def test_nothing_played_is_silence_and_the_pairing_starts_when_it_plays():
    ref = EchoReference(margin=480)
    assert not ref.take(BLOCK).any()
    assert not ref.take(BLOCK).any()
    ref.played(counting(BLOCK * 2))
    got = ref.take(BLOCK)
    assert np.array_equal(got, counting(BLOCK, BLOCK - 480))
    assert ref.realigned == 0


def test_the_start_of_playback_is_silence_before_it():
    ref = EchoReference(margin=480)
    ref.played(counting(600))
    got = ref.take(BLOCK)  # the block ends 480 before the newest: 120 played, the rest before
    assert not got[:-120].any() and np.array_equal(got[-120:], counting(120))


def test_a_playback_that_stops_hands_over_silence_then_realigns():
    ref = EchoReference(margin=480)
    ref.played(counting(BLOCK * 2))
    ref.take(BLOCK)
    for _ in range(3):  # playback stopped (device gone): what is left, then silence
        ref.take(BLOCK)
    assert not ref.take(BLOCK).any()
    ref.played(counting(BLOCK * 2, 50_000))  # back
    got = ref.take(BLOCK)
    assert np.array_equal(got, counting(BLOCK, 50_000 + BLOCK - 480))
    assert ref.realigned == 1


def test_a_capture_stall_within_the_device_buffer_keeps_the_pairing():
    ref = EchoReference(margin=480)
    signal = counting(RATE)
    ref.played(signal[:BLOCK * 2])
    start = int(ref.take(BLOCK)[0]) - 1
    ref.played(signal[BLOCK * 2:BLOCK * 6])  # 80 ms played while capture was held up
    for i in range(1, 5):  # the capture thread catches up: consecutive, no jump
        assert np.array_equal(ref.take(BLOCK), signal[start + i * BLOCK:start + (i + 1) * BLOCK])
    assert ref.realigned == 0


def test_a_pairing_that_stays_short_is_made_again():
    """Paired while the playback was further ahead than it stays (a burst at its start): the
    blocks keep coming up short of played audio, so after SHORT_BLOCKS the pairing is made
    again, further back by the shortfall, and is short no more."""
    ref = EchoReference(margin=480)
    signal = counting(RATE * 2)
    at = BLOCK * 3
    ref.played(signal[:at])  # the burst
    ref.take(BLOCK)
    for step in [720] * 3 + [BLOCK] * processing.SHORT_BLOCKS:  # then less, then steady
        ref.played(signal[at:at + step])
        at += step
        ref.take(BLOCK)
    assert ref.realigned == 1 and ref.margin == 480 + 240
    short = ref.short
    for _ in range(3):
        ref.played(signal[at:at + BLOCK])
        at += BLOCK
        assert np.array_equal(ref.take(BLOCK), signal[at - 720 - BLOCK:at - 720])
    assert ref.short == short


def test_the_margin_grows_no_further_than_its_bound():
    ref = EchoReference(margin=480, max_margin=600)
    signal = counting(RATE * 2)
    ref.played(signal[:BLOCK * 3])
    ref.take(BLOCK)
    at = BLOCK * 3
    for step in [BLOCK - 880] + [BLOCK] * processing.SHORT_BLOCKS:  # then 400 short each
        ref.played(signal[at:at + step])
        at += step
        ref.take(BLOCK)
    assert ref.realigned == 1 and ref.margin == 600


def test_a_stall_beyond_the_slack_realigns():
    ref = EchoReference(margin=480)
    signal = counting(RATE)
    ref.played(signal[:BLOCK * 2])
    ref.take(BLOCK)
    ref.played(signal[BLOCK * 2:BLOCK * 12])  # 200 ms: beyond margin + slack
    got = ref.take(BLOCK)
    assert np.array_equal(got, signal[BLOCK * 12 - 480 - BLOCK:BLOCK * 12 - 480])
    assert ref.realigned == 1


def test_unpair_pairs_again_from_the_newest_played():
    ref = EchoReference(margin=480)
    signal = counting(RATE)
    ref.played(signal[:BLOCK * 2])
    ref.take(BLOCK)
    ref.played(signal[BLOCK * 2:BLOCK * 4])  # two periods played, one of them never heard
    ref.unpair()  # the capture side lost a period: the old count is off by it
    assert np.array_equal(ref.take(BLOCK), signal[BLOCK * 4 - 480 - BLOCK:BLOCK * 4 - 480])
    assert ref.realigned == 1


def test_a_device_at_44100_hz_is_resampled_for_the_canceller():
    ref = EchoReference(margin=0)
    tone = (8000 * np.sin(2 * np.pi * 1000 * np.arange(44_100) / 44_100)).astype(np.int16)
    for i in range(0, len(tone), 441):
        ref.played(tone[i:i + 441], rate=44_100)
    got = ref.take(BLOCK).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(got * np.hanning(BLOCK)))
    assert np.fft.rfftfreq(BLOCK, 1 / RATE)[np.argmax(spectrum)] == pytest.approx(1000, abs=50)


def test_a_margin_that_does_not_fit_is_refused():
    with pytest.raises(ValueError):
        EchoReference(margin=RATE)


# --- WebRTC's stage at 16 kHz, resampled around it -----------------------------------------------


def test_webrtc_runs_at_16_khz_in_20_ms_blocks_and_adds_no_delay():
    """A call's stage runs AEC3 at 16 kHz (a fifth less CPU than at 48 kHz, see the bench):
    the capture path still gets a 48 kHz block for each block, and the resampling around it
    makes the microphone no later than AEC3 at 48 kHz (its band-splitting filters) does."""
    voice, _ = sl.speech(4, 2)
    mic = sl.to_int16(voice)
    lags = {}
    for rate in (processing.WEBRTC_RATE, RATE):
        backend = processing.WebRtcBackend(ECHO_ONLY, stream_delay_ms=2, rate=rate)
        blocks = [backend.process(mic[i:i + BLOCK], np.zeros(BLOCK, np.int16))
                  for i in range(0, len(mic), BLOCK)]
        assert {len(b) for b in blocks} == {BLOCK}
        out = np.concatenate(blocks)
        lags[rate] = lag_of(out, mic)
        shifted = np.concatenate((out[lags[rate]:], np.zeros(lags[rate], np.int16)))
        assert sl.level_dbfs(shifted[RATE:]) - sl.level_dbfs(mic[RATE:]) > -1.0  # kept
    assert processing.WEBRTC_RATE == 16_000
    assert stage(ECHO_ONLY).backend.rate == processing.WEBRTC_RATE  # what a call makes
    assert lags[16_000] <= lags[RATE]


def test_an_unsupported_webrtc_rate_is_refused():
    with pytest.raises(ValueError, match="16, 32 or 48 kHz"):
        processing.WebRtcBackend(ECHO_ONLY, stream_delay_ms=0, rate=8_000)


def test_blocks_of_any_length_come_out_whole_and_in_order():
    """Blocks that do not come down as whole 10 ms frames (a 44.1 kHz device's, a short read)
    leave samples waiting for the next block; steady 20 ms blocks leave none, and are handed
    on without a copy (the stage's glue was a quarter of its CPU)."""
    voice, _ = sl.speech(3, 2)
    mic = sl.to_int16(voice)
    backend = processing.WebRtcBackend(ECHO_ONLY, stream_delay_ms=2)
    sizes = [961, 959, 500, 1420, 960, 333, 1587] * 8
    outs, at = [], 0
    for size in sizes:
        block = mic[at:at + size]
        out = backend.process(block, np.zeros(len(block), np.int16))
        assert len(out) == len(block)
        outs.append(out)
        at += size
    out = np.concatenate(outs)
    lag = lag_of(out, mic[:len(out)])
    steady = 20 * RATE // 1000 * 5  # past the canceller's first frames
    shifted = np.concatenate((out[lag:], np.zeros(lag, np.int16)))[steady:at - lag]
    assert sl.level_dbfs(shifted) - sl.level_dbfs(mic[steady:at - lag]) > -1.0
    # the glue: nothing left over is joined by handing on the new samples themselves
    new = np.arange(4, dtype=np.int16)
    assert processing._joined(np.zeros(0, np.int16), new) is new
    assert list(processing._joined(new[:1], new)) == [0, 0, 1, 2, 3]


def test_blocks_across_the_ring_s_end_are_handed_over_whole():
    """played() and take() copy a block in one slice unless it straddles the ring's end:
    with a ring of an odd size every block lands somewhere else, and each taken block is
    exactly what was played, wrapped or not."""
    margin = reference_margin(3, 5)
    ref = EchoReference(margin=margin, capacity=margin + 3 * BLOCK + 7)
    signal = counting(RATE * 2)
    ref.played(signal[:margin + BLOCK])
    written = margin + BLOCK
    got = ref.take(BLOCK)
    taken_to = int(got[-1])  # counting() is 1 at index 0: the next index
    for _ in range(60):
        ref.played(signal[written:written + BLOCK])
        written += BLOCK
        assert np.array_equal(ref.take(BLOCK), signal[taken_to:taken_to + BLOCK])
        taken_to += BLOCK
    assert ref.realigned == 0 and ref.short == 0


def test_steady_blocks_go_through_whole_and_come_out_as_the_streams_make_them():
    """Once running, a 20 ms block comes down as whole frames of microphone and reference
    alike, is worked on and goes back up as one block, with nothing left waiting: the output
    is exactly what the three soxr streams make of the blocks, from the first whole block
    on, and the stage holds no remainder between blocks."""
    import soxr

    voice, _ = sl.speech(2, 2)
    mic, ref = sl.to_int16(voice), sl.to_int16(voice[::-1])
    seen: list[tuple[np.ndarray, np.ndarray | None]] = []

    def work(near: np.ndarray, far: np.ndarray | None) -> np.ndarray:
        seen.append((near, far))
        return near

    resampled = processing._Resampled(16_000)
    streams = [soxr.ResampleStream(a, b, 1, dtype="int16",
                                   quality=processing.WEBRTC_RESAMPLE_QUALITY)
               for a, b in ((RATE, 16_000), (RATE, 16_000), (16_000, RATE))]
    for at in range(0, len(mic) - BLOCK + 1, BLOCK):
        out = resampled.process(mic[at:at + BLOCK], ref[at:at + BLOCK], work)
        down = streams[0].resample_chunk(mic[at:at + BLOCK])
        down_far = streams[1].resample_chunk(ref[at:at + BLOCK])
        up = streams[2].resample_chunk(down[:len(down) // 160 * 160])
        if at >= 2 * BLOCK:  # soxr's first blocks come out a few samples short
            assert len(down) == 320 and np.array_equal(seen[-1][0], down)
            assert seen[-1][1] is not None and np.array_equal(seen[-1][1], down_far)
            assert np.array_equal(out, up)
            assert not (len(resampled._near) or len(resampled._far) or len(resampled._out))
