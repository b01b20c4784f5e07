"""The capture path's audio processing: echo cancellation, noise suppression and gain control.

PCM in, PCM out: the capture path's 20 ms blocks (``alsa.PERIOD`` mono int16 samples at
``alsa.RATE``), processed on the capture thread as each block is read, before it goes to the
loop. A speakerphone's microphone hears the far end from its own speaker; the echo canceller
removes it, given the far end's audio as it was actually played (``EchoReference``: the
playback thread hands it every block it writes to the device, after its buffer and with the
tones mixed in, since those echo too).

Two backends, loaded only when a stage is made (a phone without handsfree never loads either):

- ``webrtc``: WebRTC's audio processing module through ``pywebrtc-audio``: AEC3 (which always
  runs its high-pass filter), noise suppression, AGC2, at 16 kHz (``WEBRTC_RATE``; resampled
  around it). The default where it is installed. pywebrtc-audio 0.2.0 exposes none of AEC3's
  configuration (its suppressor's tuning, dominant-nearend detection): only the rate and the
  stream delay; and its build of WebRTC leaves out the field trials that override AEC3's
  suppressor tuning (scripts/bench/echo_candidates.py --field-trials shows them change nothing).
- ``speex``: speexdsp's MDF echo canceller and preprocessor on Debian's libspeexdsp1 (see
  speexdsp.py): the fallback where WebRTC's has no wheel (32-bit ARM), and the bench's
  reference.

Delay. The reference block handed over with a microphone block is the one written to the
playback device ``margin`` samples before the newest (``reference_margin``: all but one of the
device's periods, so the playback thread's wake-ups never leave the capture thread short of
reference). That pairing keeps the reference ahead of its echo whatever the device's fill at
that moment; what remains, the device's last period, the converters and the room (and, on the
test rig, its FIFOs), AEC3's own delay estimator finds and follows (it covers up to about
400 ms: measured by scripts/bench/echo_cancel.py). The stage passes the estimate
(``stream_delay_hint_ms``) to the library as its stream delay, but AEC3 in its default
configuration relies on its estimator, which is why the pairing must only keep the reference
early, never exact. speexdsp has no estimator: its filter must span the whole path (``tail``).

Each second the stage publishes what it saw (``EchoFigures``: echo return loss enhancement and
the residual echo level, measured on the blocks during which the far end was playing), for call
quality's ``sample``. With everything off there is no stage at all (``make_stage`` returns None)
and nothing is imported.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import soxr

from .alsa import PERIOD, RATE, RESAMPLE_QUALITY

log = logging.getLogger(__name__)

BACKENDS = ("webrtc", "speex")
FAR_ACTIVE_DBFS = -50.0  # a reference block above this level counts as the far end playing
REFERENCE_SECONDS = 1.0  # played audio kept for the capture side (beyond it: realigned)
SHORT_BLOCKS = 5  # consecutive blocks short of played audio before the pairing is made again
SPEEX_TAIL_MS = 300  # speexdsp's filter: delay + room, since it has no delay estimator
WEBRTC_NS_LEVEL = 2  # 0-3: 6, 12, 18, 21 dB of suppression; 18 dB for a speakerphone's room
# WebRTC's stage runs at 16 kHz, resampled around it: AEC3 at 48 kHz splits three bands and
# costs a fifth more CPU for speech above 8 kHz that a phone's voice hardly has; at 16 kHz it
# lost less of the near end in double talk too (scripts/bench/echo_cancel.py prints both).
WEBRTC_RATE = 16_000
# soxr's quick (cubic) resampler: no delay and no buffering. Its "LQ" filter is cleaner above
# 8 kHz but hands out its output in bursts that would need 39 ms of buffering to keep 20 ms
# blocks steady; the quick one costs -31 dB of error below 7 kHz (measured, speech-like).
WEBRTC_RESAMPLE_QUALITY = "QQ"
BLOCKS_PER_SECOND = RATE // PERIOD


class ProcessingUnavailable(RuntimeError):
    """No processing backend can be loaded (its package or library is missing)."""


@dataclass(frozen=True)
class ProcessingSettings:
    """``[audio]`` processing switches (phase 2 reads them from the config file: on for a
    handsfree device, off for a headset, where they cost CPU for nothing)."""

    echo_cancellation: bool = False  # cancel what the playback device played (AEC3)
    noise_suppression: bool = False  # steady background noise (fans, hum, hiss), ~18 dB
    auto_gain: bool = False  # adaptive digital gain with a limiter (AGC2)

    @property
    def enabled(self) -> bool:
        return self.echo_cancellation or self.noise_suppression or self.auto_gain

    @classmethod
    def handsfree(cls) -> ProcessingSettings:
        return cls(echo_cancellation=True, noise_suppression=True, auto_gain=True)


@dataclass(frozen=True)
class EchoFigures:
    """One second of what the echo canceller saw, on the blocks where the far end played.

    None where it cannot be said: no far-end audio that second (or echo cancellation off)."""

    echo_return_loss: float | None  # dB: far end played -> microphone (how loud the echo is)
    echo_return_loss_enhancement: float | None  # dB: microphone -> stage output
    residual_echo_level: float | None  # dBFS of the stage's output while the far end played
    far_active: float  # fraction of the second during which the far end played (0..1)


def reference_margin(playback_periods: int, playback_period_ms: int) -> int:
    """Samples (at RATE) between the newest block written to the playback device and the
    reference handed to the canceller: all of the device's periods but the one it plays."""
    return max(0, playback_periods - 1) * RATE * playback_period_ms // 1000


def stream_delay_hint_ms(playback_period_ms: int, path_ms: int = 0) -> int:
    """The delay from a reference sample to its echo in the microphone that the pairing
    leaves (see the module's docstring): on average half the device's last period, plus what
    is known of the path beyond ALSA (``path_ms``: converters, room)."""
    return playback_period_ms // 2 + path_ms


class EchoReference:
    """What the playback device played, handed from the playback thread to the capture thread.

    ``played(block, rate)`` on the playback thread for every block it writes to the device;
    ``take(n)`` on the capture thread for every microphone block: the n reference samples that
    go with it. Both devices run on one clock (one sound card, or a USB speakerphone), so after
    the first ``take`` each microphone sample is paired with the same played sample for the
    rest of the call, whatever either thread's timing; only when the playback stops (nothing
    written: silence is handed over), the two drift more than ``slack`` apart (an xrun, a
    stall, two cards' clocks), the blocks keep coming up short of played audio (the pairing
    was made at a moment of unusual fill) or ``unpair()`` is called (the capture side lost
    audio) is the pairing made again (``realigned`` counts those), which the canceller then
    follows."""

    def __init__(self, *, margin: int, slack: int | None = None, max_margin: int | None = None,
                 capacity: int = int(RATE * REFERENCE_SECONDS)) -> None:
        # A pairing that keeps coming up short grows the margin by the shortfall, up to
        # max_margin: a playback path whose fill swings more than its device periods (a USB
        # card's own buffering, the test rig's FIFO) is paired further back. Bounded, since
        # a margin beyond the path's fill would put the reference after its echo, which no
        # canceller can remove; a playback thread that blocks on a device of 3 x 5 ms swings
        # by a period and never grows it.
        self.max_margin = max_margin if max_margin is not None else margin + PERIOD
        if margin < 0 or self.max_margin < margin or self.max_margin + 2 * PERIOD > capacity:
            raise ValueError(f"reference margin {margin} does not fit {capacity} samples")
        self.margin = margin
        # beyond margin before the pairing is made again: the capture device's buffer (4
        # periods) lets its thread fall that far behind and catch up without losing audio
        self.slack = slack if slack is not None else 5 * PERIOD
        self._ring = np.zeros(capacity, np.int16)
        self._written = 0  # samples handed over since the start (absolute index)
        self._read: int | None = None  # absolute index of the next sample to take
        self._seen = 0  # _written at the last take
        self._short_run = 0  # consecutive takes that were short
        self._worst_short = 0  # the largest shortfall in that run
        self._lock = threading.Lock()  # two worker threads; never held by the loop
        self._resampler: soxr.ResampleStream | None = None
        self._rate = RATE
        self.realigned = 0
        self.cpu_seconds = 0.0  # the playback thread's CPU clock spent in played()
        self.short = 0  # samples handed over as silence because they had not been played yet

    def played(self, block: np.ndarray, rate: int = RATE) -> None:
        """A block the playback thread just wrote to the device (mono int16 at ``rate``)."""
        started = time.thread_time()
        if rate != RATE:
            if rate != self._rate or self._resampler is None:
                self._rate = rate
                self._resampler = soxr.ResampleStream(rate, RATE, 1, dtype="int16",
                                                      quality=RESAMPLE_QUALITY)
            block = self._resampler.resample_chunk(np.asarray(block, np.int16))
        samples = np.asarray(block, np.int16)
        capacity, n = len(self._ring), len(samples)
        if n > capacity:
            samples, n = samples[-capacity:], capacity
        with self._lock:
            start = self._written % capacity
            if start + n <= capacity:  # the usual block: one slice, no wrap
                self._ring[start:start + n] = samples
            else:
                first = capacity - start
                self._ring[start:] = samples[:first]
                self._ring[:n - first] = samples[first:]
            self._written += n
        self.cpu_seconds += time.thread_time() - started

    def take(self, n: int) -> np.ndarray:
        """The n played samples that go with the microphone block just read."""
        with self._lock:
            written = self._written
            if self._read is None or not self._aligned(written, n):
                if self._read is not None:  # the pairing is lost: made again from now
                    self.realigned += 1
                    if self._short_run >= SHORT_BLOCKS:
                        self.margin = min(self.max_margin, self.margin + self._worst_short)
                    self._short_run = self._worst_short = 0
                if written == self._seen:  # nothing played since the last block: silence
                    self._read = None
                    return np.zeros(n, np.int16)
                self._read = written - self.margin - n  # < 0 at the start: silence before
            self._seen = written
            start, self._read = self._read, self._read + n
            capacity = len(self._ring)
            pos = start % capacity
            if max(0, written - capacity) <= start and start + n <= written \
                    and pos + n <= capacity:
                # the usual block: played, in the ring, not wrapping (one copy, no zeros)
                self._short_run = self._worst_short = 0
                return self._ring[pos:pos + n].copy()
            out = np.zeros(n, np.int16)
            first, last = max(start, 0, written - capacity), min(start + n, written)
            short = max(0, start + n - max(written, start))  # not played yet: silence
            self.short += short
            self._short_run = self._short_run + 1 if short else 0
            self._worst_short = max(self._worst_short, short) if short else 0
            while first < last:  # at most two slices: the ring wraps once
                pos = first % capacity
                run = min(last - first, capacity - pos)
                out[first - start:first - start + run] = self._ring[pos:pos + run]
                first += run
            return out

    def unpair(self) -> None:
        """Make the pairing again at the next take: the capture side lost audio (an overrun,
        a reopened device), so counting on from the old pairing would be off by as much."""
        with self._lock:
            if self._read is not None:
                self.realigned += 1
            self._read = None
            self._seen = -1  # pair at once if anything has been played
            self._short_run = self._worst_short = 0

    def _aligned(self, written: int, n: int) -> bool:
        """Whether the pairing still holds: the block to take was played, but for a few
        blocks short by less than n/2 (a thread's late wake-up), and what was played is no
        more than margin + slack ahead of it (the capture thread catching up after a stall
        its device buffer absorbed). Short for longer, the pairing was made at a moment the
        playback was further ahead than it stays: it is made again."""
        assert self._read is not None
        lead = written - (self._read + n)
        if lead < 0 and (lead < -n // 2 or self._short_run >= SHORT_BLOCKS):
            return False
        return lead <= self.margin + self.slack


class Backend(Protocol):
    def process(self, near: np.ndarray, far: np.ndarray | None) -> np.ndarray: ...

    def close(self) -> None: ...


class WebRtcBackend:
    """WebRTC's audio processing (pywebrtc-audio), one stage after another as in WebRTC's own
    pipeline: AEC3 (with its high-pass filter), noise suppression, AGC2 (told the noise
    suppressor's speech probability). Not pywebrtc-audio's combined ``AudioProcessor``: in
    0.2.0 it analyses noise before splitting the bands, which leaves about 6 dB of
    suppression whatever the level (its standalone NoiseSuppressor gives the 18 dB asked)."""

    name = "webrtc"

    def __init__(self, settings: ProcessingSettings, *, stream_delay_ms: int,
                 rate: int = WEBRTC_RATE) -> None:
        try:
            import pywebrtc_audio as webrtc
        except ImportError as err:
            raise ProcessingUnavailable(f"pywebrtc-audio is not installed ({err})") from err
        if rate not in (16_000, 32_000, RATE):
            raise ValueError(f"WebRTC's audio processing runs at 16, 32 or 48 kHz, not {rate}")
        self.rate = rate
        self._echo = (webrtc.EchoCanceller(sample_rate=rate, stream_delay_ms=stream_delay_ms)
                      if settings.echo_cancellation else None)
        self._noise = (webrtc.NoiseSuppressor(sample_rate=rate, level=WEBRTC_NS_LEVEL)
                       if settings.noise_suppression else None)
        self._gain = webrtc.GainController(sample_rate=rate) if settings.auto_gain else None
        self._resampled = _Resampled(rate) if rate != RATE else None

    def process(self, near: np.ndarray, far: np.ndarray | None) -> np.ndarray:
        if self._resampled is None:
            return self._process(near, far)
        return self._resampled.process(near, far, self._process)

    def _process(self, near: np.ndarray, far: np.ndarray | None) -> np.ndarray:
        # Each call releases the GIL while it works (10 ms at a time, in one C++ loop).
        out = near
        if self._echo is not None:
            out = self._echo.process(out, far if far is not None else np.zeros_like(near))
        if self._noise is not None:
            out = self._noise.process(out)
        if self._gain is not None:
            speech = self._noise.speech_probability if self._noise is not None else None
            out = self._gain.process(out, speech)
        return out

    def close(self) -> None:
        pass


class _Resampled:
    """A 48 kHz block in, processed at ``rate`` in whole 10 ms frames, a 48 kHz block out:
    soxr streams down (microphone and reference alike, so their pairing holds) and up. A
    block's worth at ``rate`` can come out of soxr a sample short or long; the odd samples
    wait for the next block, and the output is padded until the first full block is out.

    Once running, a 20 ms block comes down as exactly two frames and goes up as exactly one
    block (soxr's quick resampler holds nothing back), so nothing waits: each array is handed
    on as it is, without the copies that joining it to an empty remainder would make (the
    stage's glue around AEC3 was a quarter of its CPU: scripts/bench/echo_cancel.py)."""

    def __init__(self, rate: int) -> None:
        def stream(src: int, dst: int) -> soxr.ResampleStream:
            return soxr.ResampleStream(src, dst, 1, dtype="int16",
                                       quality=WEBRTC_RESAMPLE_QUALITY)

        self._frame = rate // 100
        self._down_near, self._down_far = stream(RATE, rate), stream(RATE, rate)
        self._up = stream(rate, RATE)
        self._near = self._far = np.zeros(0, np.int16)
        self._out = np.zeros(0, np.int16)

    def process(self, near: np.ndarray, far: np.ndarray | None,
                work: Callable[[np.ndarray, np.ndarray | None], np.ndarray]) -> np.ndarray:
        down = self._down_near.resample_chunk(near)
        down_far = self._down_far.resample_chunk(far) if far is not None else None
        if not (len(self._near) or len(self._far) or len(self._out)) \
                and len(down) % self._frame == 0 \
                and (down_far is None or len(down_far) == len(down)):
            # the usual block once running: whole frames of both, nothing waiting, so no
            # slices and no remainders (each slice is a new array object: a tenth of the glue)
            up = self._up.resample_chunk(work(down, down_far))
            if len(up) == len(near):
                return up
            self._out = up  # soxr's first blocks: left to the general path below
            down, down_far = down[:0], down_far[:0] if down_far is not None else None
        self._near = _joined(self._near, down)
        if down_far is not None:
            self._far = _joined(self._far, down_far)
        ready = (min(len(self._near), len(self._far)) if far is not None
                 else len(self._near)) // self._frame * self._frame
        if ready:
            done = work(self._near[:ready], self._far[:ready] if far is not None else None)
            self._near, self._far = self._near[ready:], self._far[ready:]
            self._out = _joined(self._out, self._up.resample_chunk(done))
        n = len(near)
        if len(self._out) < n:  # soxr's first blocks: short by a few samples
            self._out = np.concatenate((np.zeros(n - len(self._out), np.int16), self._out))
        block, self._out = self._out[:n], self._out[n:]
        return block


def _joined(rest: np.ndarray, new: np.ndarray) -> np.ndarray:
    """``new`` after what was left over; ``new`` itself when nothing was (no copy)."""
    return np.concatenate((rest, new)) if len(rest) else new


class SpeexBackend:
    """speexdsp (Debian's libspeexdsp1): MDF echo canceller and preprocessor."""

    name = "speex"

    def __init__(self, settings: ProcessingSettings, *, tail_ms: int = SPEEX_TAIL_MS) -> None:
        from .speexdsp import SpeexProcessor, SpeexUnavailable

        try:
            self._speex = SpeexProcessor(
                rate=RATE, frame=PERIOD, echo_cancellation=settings.echo_cancellation,
                noise_suppression=settings.noise_suppression, auto_gain=settings.auto_gain,
                tail_ms=tail_ms)
        except SpeexUnavailable as err:
            raise ProcessingUnavailable(str(err)) from err

    def process(self, near: np.ndarray, far: np.ndarray | None) -> np.ndarray:
        return self._speex.process(near, far)

    def close(self) -> None:
        self._speex.close()


def load_backend(settings: ProcessingSettings, backend: str = "auto", *,
                 stream_delay_ms: int = 0, webrtc_rate: int = WEBRTC_RATE) -> Backend:
    """The backend asked for; ``auto``: WebRTC's, else speexdsp's (with a warning)."""
    if backend not in ("auto", *BACKENDS):
        raise ValueError(f"audio processing backend {backend!r}: auto, webrtc or speex")
    if backend in ("auto", "webrtc"):
        try:
            return WebRtcBackend(settings, stream_delay_ms=stream_delay_ms, rate=webrtc_rate)
        except ProcessingUnavailable as err:
            if backend == "webrtc":
                raise
            log.warning("%s: using speexdsp's echo canceller and preprocessor instead", err)
    return SpeexBackend(settings)


class CaptureStage:
    """The processing stage of one capture path: ``process(block)`` on the capture thread for
    every block, in order; ``figures`` (any thread) is the last full second's EchoFigures."""

    def __init__(self, settings: ProcessingSettings, backend: Backend,
                 reference: EchoReference | None = None) -> None:
        if settings.echo_cancellation and reference is None:
            raise ValueError("echo cancellation needs the played audio (an EchoReference)")
        self.settings = settings
        self.backend = backend
        self.reference = reference if settings.echo_cancellation else None
        self.figures: EchoFigures | None = None  # replaced whole once a second
        self.blocks = 0
        self.cpu_seconds = 0.0  # thread CPU spent in process(), all told
        self._blocks_this_second = 0
        self._active = 0
        self._far = self._near = self._out = 0.0  # energies over the active blocks

    def process(self, block: np.ndarray) -> np.ndarray:
        """One capture block (PERIOD int16 samples) -> the processed block."""
        started = time.thread_time()
        far = self.reference.take(len(block)) if self.reference is not None else None
        out = self.backend.process(block, far)
        if far is not None:
            self._measure(block, far, out)
        self.blocks += 1
        self.cpu_seconds += time.thread_time() - started
        return out

    def lost_audio(self) -> None:
        """The capture lost blocks (an overrun): pair microphone and reference again."""
        if self.reference is not None:
            self.reference.unpair()

    def _measure(self, near: np.ndarray, far: np.ndarray, out: np.ndarray) -> None:
        far_energy = _energy(far)
        if far_energy > len(far) * _ACTIVE_POWER:
            self._active += 1
            self._far += far_energy
            self._near += _energy(near)
            self._out += _energy(out)
        self._blocks_this_second += 1
        if self._blocks_this_second >= BLOCKS_PER_SECOND:
            self.figures = self._second()

    def _second(self) -> EchoFigures:
        active, samples = self._active, self._active * PERIOD
        figures = EchoFigures(
            echo_return_loss=_ratio_db(self._far, self._near) if active else None,
            echo_return_loss_enhancement=_ratio_db(self._near, self._out) if active else None,
            residual_echo_level=(_power_dbfs(self._out / samples) if active else None),
            far_active=active / self._blocks_this_second)
        self._blocks_this_second = self._active = 0
        self._far = self._near = self._out = 0.0
        return figures

    def close(self) -> None:
        self.backend.close()


_FULL_SCALE = 32768.0
_ACTIVE_POWER = (_FULL_SCALE * 10 ** (FAR_ACTIVE_DBFS / 20)) ** 2  # mean square per sample


def _energy(block: np.ndarray) -> float:
    samples = block.astype(np.float32)
    return float(np.dot(samples, samples))


def _ratio_db(numerator: float, denominator: float) -> float:
    return 10 * math.log10(max(numerator, 1.0) / max(denominator, 1.0))


def _power_dbfs(mean_square: float) -> float:
    return 10 * math.log10(max(mean_square, 1e-3) / _FULL_SCALE ** 2)


def make_stage(settings: ProcessingSettings, *, playback_periods: int,
               playback_period_ms: int, backend: str = "auto",
               path_ms: int = 0, early_ms: int = 0) -> CaptureStage | None:
    """The stage for a capture path whose echo comes from a playback device of
    ``playback_periods`` x ``playback_period_ms``; None when everything is off (no cost, no
    import). ``early_ms`` pairs each microphone block with played audio that much further
    back (the threads' wake-ups under load; the canceller finds the delay). Raises
    ProcessingUnavailable when no backend can be loaded."""
    if not settings.enabled:
        return None
    margin = reference_margin(playback_periods, playback_period_ms) + RATE * early_ms // 1000
    reference = EchoReference(margin=margin) if settings.echo_cancellation else None
    engine = load_backend(settings, backend,
                          stream_delay_ms=stream_delay_hint_ms(playback_period_ms, path_ms))
    log.info("audio processing: %s (echo cancellation %s, noise suppression %s, "
             "auto gain %s)", getattr(engine, "name", type(engine).__name__),
             _on(settings.echo_cancellation), _on(settings.noise_suppression),
             _on(settings.auto_gain))
    return CaptureStage(settings, engine, reference)


def _on(flag: bool) -> str:
    return "on" if flag else "off"
