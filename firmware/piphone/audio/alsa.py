"""Capture and playback on named ALSA devices: blocking pyalsaaudio I/O in its own threads.

Mono s16 at 48 kHz in fixed periods: 20 ms for capture (one frame), 3 x 5 ms for playback (less
audio waiting in the device; ``period_ms`` chooses 5, 10 or 20), whose own buffer keeps an
adaptive cushion (see CUSHION_MS). A device that insists on another
rate or on stereo is opened as it wants and converted here (soxr for the rate), so the rest of
piphone only ever sees 960-sample (20 ms) mono blocks. The only way from a thread into the loop is
``loop.call_soon_threadsafe``; the playback buffer is a bounded deque (append and popleft are
atomic in CPython), so the loop never waits on a lock.

Trouble is never fatal: an xrun (pyalsaaudio returns -EPIPE after re-preparing) is counted and
logged; a failed read or write (the device is gone) is reported once through ``on_failure``,
after which capture delivers silence and playback discards, and the device is reopened every
``REOPEN_INTERVAL`` seconds until it comes back (then ``on_recovered``). ``suspend()`` (the
card is known gone) drops the device and stops the tries until ``resume()``, which tries at once.

Handsfree (processing.py): ``Capture.stage`` processes each block on the capture thread while
someone listens; ``Playback.tap`` gets each block written (the echo canceller's reference).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import alsaaudio
import numpy as np
import soxr

from ..backoff import Backoff
from . import tones
from .devices import AudioDeviceError

log = logging.getLogger(__name__)

RATE = 48_000
PERIOD = RATE // 50  # samples in 20 ms
PERIOD_SECONDS = 0.020
REOPEN_INTERVAL = 0.5  # seconds between attempts to reopen a failed device
RAMP = 120  # samples (2.5 ms) of fade at the edges of an underrun: no click
# soxr's "LQ" holds back at most a period or so; "HQ" holds 8 kHz audio back ~140 ms in bursts,
# which a phone cannot afford for a filter finer than the telephone band needs.
RESAMPLE_QUALITY = "LQ"


# Playback's device: three periods of 5 ms, 15 ms of audio in the device. Two of 10 ms held
# 20 ms, which with the rest of the path missed the ALSA share goal of 20 ms a phone
# (scripts/bench/mouth_to_ear.py); three periods rather than two leave a period of slack for
# the thread's wake-ups. Capture keeps 20 ms: a frame cannot leave before it is full.
PLAYBACK_PERIOD_MS = 5
PLAYBACK_PERIODS = 3
BUFFER_MS = 80  # Playback's own buffer at most; beyond it the oldest audio is dropped
# Playback's own buffer keeps an adaptive cushion beyond the period it hands the device next,
# as voice/rtc/jitter.py's depth does: none while frames arrive in time (each 5 ms of it would be
# 5 ms more mouth to ear); an underrun (a frame came late) grows it by a period, up to
# MAX_CUSHION_MS, and CALM_MS without one shrinks it by a period again. The underrun's own
# silence already delayed the stream by at least that period, so growing costs nothing more;
# without the cushion, catch-up would drop that period again and the next late frame would
# underrun again: a click and a glide every few seconds under load.
CUSHION_MS = 0  # the cushion to start with (and never go below)
MAX_CUSHION_MS = 20
CALM_MS = 5_000
# Catch-up: a burst (a jitter buffer releasing several frames, a capture backlog at the far
# end) would otherwise stay in the buffer for the rest of the call, since audio arrives
# exactly as fast as it plays. Whatever stays above the cushion for CATCH_UP_MS is dropped.
CATCH_UP_MS = 500


class Stage(Protocol):
    """The capture path's processing (processing.CaptureStage), as Capture runs it."""

    def process(self, block: np.ndarray) -> np.ndarray: ...

    def lost_audio(self) -> None: ...  # the capture lost blocks: the echo pairing is off


def open_pcm(kind: int, device: str, rate: int, periods: int,
             periodsize: int | None = None) -> alsaaudio.PCM:
    """Open one PCM; the seam the test rig wraps to unplug a device."""
    return alsaaudio.PCM(type=kind, device=device, channels=1, rate=rate,
                         format=alsaaudio.PCM_FORMAT_S16_LE,
                         periodsize=periodsize or rate // 50, periods=periods)


class _Stream:
    """What capture and playback share: opening, the worker thread, failure and close."""

    kind: int
    direction: str

    def __init__(self, device: str, *, periods: int, rate: int | None,
                 on_failure: Callable[[Exception], None] | None,
                 on_recovered: Callable[[], None] | None, period_ms: int = 20) -> None:
        if period_ms not in (5, 10, 20):
            raise ValueError(f"an ALSA period of {period_ms} ms: 5, 10 or 20 divide a frame")
        self.device = device
        self.periods = periods
        self.period_ms = period_ms
        self.period_seconds = period_ms / 1000
        self.requested_rate = rate or RATE  # a test can force a non-48k device rate
        self.on_failure, self.on_recovered = on_failure, on_recovered
        self.xruns = 0
        self.failed: Exception | None = None
        self.rate = self.channels = 0
        self.period = RATE * period_ms // 1000  # device-rate samples a period, set when opened
        self._pcm: alsaaudio.PCM | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # suspend(): the card is known gone; drop the PCM and make no reopen tries until
        # resume(). _wake cuts the thread's wait short (resume, close) so a replug is tried now.
        self._suspended: Exception | None = None
        self._wake = threading.Event()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self, *, tolerate_missing: bool = False) -> None:
        """Open the device and start the thread (on the loop; idempotent).

        A device that cannot be opened raises AudioDeviceError naming it, unless
        ``tolerate_missing``: then it is reported like a lost device (silence, reopen tries),
        which is what a call in progress wants.
        """
        if self._thread is not None:
            return
        if self._stop.is_set():
            raise RuntimeError(f"{self.direction} on {self.device!r} is closed")
        self._loop = asyncio.get_running_loop()
        try:
            if self._suspended is not None:
                raise alsaaudio.ALSAAudioError(str(self._suspended))
            self._pcm = self._open()
        except alsaaudio.ALSAAudioError as err:
            error = AudioDeviceError(f"cannot open ALSA {self.direction} device "
                                     f"{self.device!r}: {err}")
            if not tolerate_missing:
                raise error from err
            self._lost(error)
        self._thread = threading.Thread(target=self._run, daemon=True,
                                         name=f"alsa-{self.direction}-{self.device}")
        self._thread.start()

    def _open(self) -> alsaaudio.PCM:
        pcm = open_pcm(self.kind, self.device, self.requested_rate, self.periods,
                       self.requested_rate * self.period_ms // 1000)
        info = pcm.info()
        if info["format"] != alsaaudio.PCM_FORMAT_S16_LE:
            pcm.close()
            raise alsaaudio.ALSAAudioError(f"{self.device} cannot do S16_LE")
        if info["rate"] != self.requested_rate:  # reopen with a 20 ms period at its own rate
            pcm.close()
            pcm = open_pcm(self.kind, self.device, info["rate"], self.periods,
                           info["rate"] * self.period_ms // 1000)
            info = pcm.info()
        self.rate, self.channels = info["rate"], info["channels"]
        self.period = self.rate * self.period_ms // 1000
        self._setup_conversion()
        log.info("%s on %s: %d Hz, %d channel(s), %d periods of %d ms", self.direction,
                 self.device, self.rate, self.channels, info["periods"], self.period_ms)
        return pcm

    def _setup_conversion(self) -> None:
        pass

    def _call(self, callback: Callable[..., object] | None, *args: object) -> None:
        """Run ``callback`` on the loop (the one crossing from this thread into the loop)."""
        if self._loop is None or callback is None:
            return
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # loop closed: nobody left to tell
            pass

    def _xrun(self) -> None:
        self.xruns += 1
        log.warning("%s xrun on %s (%d so far)", self.direction, self.device, self.xruns)

    def _lost(self, err: Exception) -> None:
        if self._pcm is not None:
            try:
                self._pcm.close()
            except alsaaudio.ALSAAudioError:
                pass
            self._pcm = None
        if self.failed is None:
            self.failed = err
            log.warning("%s on %s failed: %s", self.direction, self.device, err)
            self._call(self.on_failure, err)

    def suspend(self, reason: Exception) -> None:
        """The device is known to be gone (its card left the card list): report it like a
        failed read, send silence, and try no reopen until resume(). Any thread."""
        self._suspended = reason
        self._wake.set()

    def resume(self) -> None:
        """The device should be back: try to reopen it now rather than at the next retry."""
        self._suspended = None
        self._wake.set()

    def _run(self) -> None:
        retry = Backoff.steady(REOPEN_INTERVAL)
        next_try = 0.0
        deadline = time.monotonic()
        while not self._stop.is_set():
            if self._pcm is not None:
                if self._suspended is not None:
                    self._lost(self._suspended)
                    deadline = time.monotonic()
                    continue
                try:
                    self._io()
                except alsaaudio.ALSAAudioError as err:
                    self._lost(err)
                    deadline = time.monotonic()
                continue
            # The device is gone: keep the 20 ms pace without it and try to reopen.
            now = time.monotonic()
            if now >= deadline:
                self._idle()
                deadline += self.period_seconds
                if deadline < now:  # the thread was held up: resume the pace from now
                    deadline = now + self.period_seconds
            if self._suspended is None and now >= next_try:
                next_try = now + retry.next()
                try:
                    self._pcm = self._open()
                except alsaaudio.ALSAAudioError:
                    pass
                else:
                    retry.reset()
                    log.warning("%s on %s is back", self.direction, self.device)
                    self.failed = None
                    self._call(self.on_recovered)
                    continue
            wait_until = deadline if self._suspended is not None else min(deadline, next_try)
            if self._wake.wait(max(0.0, wait_until - time.monotonic())):
                self._wake.clear()
                next_try = 0.0  # resumed (or closing): try the device at once
        if self._pcm is not None:  # the thread owns the PCM: close it here, never mid-read
            self._pcm.close()
            self._pcm = None

    def _io(self) -> None:
        raise NotImplementedError

    def _idle(self) -> None:
        pass

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread and close the device; idempotent."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.error("%s thread on %s did not stop within %s s", self.direction,
                          self.device, timeout)


class Capture(_Stream):
    """Reads the device in 20 ms periods and hands 960-sample int16 blocks to subscribers."""

    kind = alsaaudio.PCM_CAPTURE
    direction = "capture"

    def __init__(self, device: str, *, periods: int = 4, rate: int | None = None,
                 on_failure: Callable[[Exception], None] | None = None,
                 on_recovered: Callable[[], None] | None = None, period_ms: int = 20) -> None:
        super().__init__(device, periods=periods, rate=rate, on_failure=on_failure,
                         on_recovered=on_recovered, period_ms=period_ms)
        self._subscribers: list[Callable[[np.ndarray], None]] = []
        self._pending = np.zeros(0, np.int16)
        self._resampler: soxr.ResampleStream | None = None
        # Handsfree processing, run on this thread on each block while someone listens
        # (swapped by one assignment; None: the blocks go as read).
        self.stage: Stage | None = None

    def subscribe(self, deliver: Callable[[np.ndarray], None]) -> None:
        """``deliver(block)`` is called on the loop for every 20 ms block; starts capture."""
        self._subscribers.append(deliver)
        self.start(tolerate_missing=True)

    def unsubscribe(self, deliver: Callable[[np.ndarray], None]) -> None:
        if deliver in self._subscribers:
            self._subscribers.remove(deliver)

    def _setup_conversion(self) -> None:
        self._resampler = (None if self.rate == RATE else
                           soxr.ResampleStream(self.rate, RATE, 1, dtype="int16",
                                                 quality=RESAMPLE_QUALITY))

    def _io(self) -> None:
        assert self._pcm is not None
        frames, data = self._pcm.read()
        if frames < 0:
            self._xrun()
            return
        if frames == 0:
            return
        samples = np.frombuffer(data, np.int16)
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels).mean(axis=1).astype(np.int16)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        self._collect(samples)

    def _collect(self, samples: np.ndarray) -> None:
        """Device periods in, 20 ms blocks out."""
        self._pending = np.concatenate((self._pending, samples))
        while len(self._pending) >= PERIOD:
            block, self._pending = self._pending[:PERIOD], self._pending[PERIOD:]
            self._emit(block)

    def _idle(self) -> None:
        # a lost microphone sounds like silence, at the device's pace
        self._collect(np.zeros(RATE * self.period_ms // 1000, np.int16))

    def _xrun(self) -> None:
        super()._xrun()
        stage = self.stage
        if stage is not None:
            stage.lost_audio()

    def _emit(self, block: np.ndarray) -> None:
        subscribers = list(self._subscribers)
        if not subscribers:
            return
        stage = self.stage
        if stage is not None:
            try:
                block = stage.process(block)
            except Exception:  # never the capture thread's end: the call goes on unprocessed
                log.exception("audio processing on %s failed: turned off", self.device)
                self.stage = None
        for deliver in subscribers:
            self._call(deliver, block)


class Playback(_Stream):
    """Plays 20 ms blocks from a small bounded buffer; silence (faded) when it runs dry."""

    kind = alsaaudio.PCM_PLAYBACK
    direction = "playback"

    def __init__(self, device: str, *, periods: int = PLAYBACK_PERIODS,
                 buffer_periods: int | None = None,
                 rate: int | None = None,
                 on_failure: Callable[[Exception], None] | None = None,
                 on_recovered: Callable[[], None] | None = None,
                 period_ms: int = PLAYBACK_PERIOD_MS) -> None:
        super().__init__(device, periods=periods, rate=rate, on_failure=on_failure,
                         on_recovered=on_recovered, period_ms=period_ms)
        if buffer_periods is None:  # 80 ms, whatever the period
            buffer_periods = BUFFER_MS // period_ms
        # Device-rate periods waiting to be played; maxlen drops the oldest on overrun.
        self._buffer: collections.deque[np.ndarray] = collections.deque(maxlen=buffer_periods)
        self.underruns = 0  # periods played as silence because nothing had arrived
        self.dropped = 0  # periods dropped because the buffer was full
        self.skipped = 0  # periods dropped to catch up (the buffer stayed above its target)
        # the cushion, in periods beyond the next one: between these, moved by underruns
        self.min_cushion = CUSHION_MS // period_ms
        self.max_cushion = max(self.min_cushion, MAX_CUSHION_MS // period_ms)
        self.cushion = self.min_cushion
        self._calm = 0  # device periods since the last underrun or shrink
        self._lowest = buffer_periods  # the buffer's low mark over the current window
        self._window = 0  # device periods into that window
        self._pending = np.zeros(0, np.int16)
        self._resampler: soxr.ResampleStream | None = None
        self._last = 0  # last sample written, to fade from on underrun
        self._dry = True
        self._overlay = tones.Overlay()  # the ring, ringback, DTMF, beeps over the call
        # Handed each block written to the device (mono, at the device's rate), on this
        # thread: the echo reference (processing.EchoReference.played). One assignment.
        self.tap: Callable[[np.ndarray, int], None] | None = None

    def play_tone(self, spec: tones.ToneSpec) -> None:
        """Mix a (cadenced) tone into what plays, until stop_sound() or another sound."""
        self._overlay.tone(spec, self.rate or RATE)

    def play_clip(self, samples: np.ndarray) -> None:
        """Mix a one-shot sound (48 kHz mono int16) into what plays, once."""
        rate = self.rate or RATE
        if rate != RATE:
            samples = soxr.resample(samples, RATE, rate, quality=RESAMPLE_QUALITY)
        self._overlay.clip(samples.astype(np.int16, copy=False))

    def stop_sound(self) -> None:
        self._overlay.stop()

    def set_tone_level(self, level_dbfs: float) -> bool:
        """The tone playing goes on at ``level_dbfs``, in cadence; False if none plays."""
        return self._overlay.set_level(level_dbfs)

    def _setup_conversion(self) -> None:
        self._resampler = (None if self.rate == RATE else
                           soxr.ResampleStream(RATE, self.rate, 1, dtype="int16",
                                                 quality=RESAMPLE_QUALITY))

    def write(self, samples: np.ndarray) -> None:
        """Queue mono int16 samples at 48 kHz (any length; called on the loop)."""
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        self._pending = np.concatenate((self._pending, samples.astype(np.int16, copy=False)))
        while len(self._pending) >= self.period:
            block, self._pending = self._pending[:self.period], self._pending[self.period:]
            if len(self._buffer) == self._buffer.maxlen:
                self.dropped += 1
            self._buffer.append(block)

    @property
    def buffered(self) -> int:
        """Periods waiting in the buffer."""
        return len(self._buffer)

    @property
    def target_depth(self) -> int:
        """Periods the buffer means to hold at its low mark: the next one and the cushion."""
        return 1 + self.cushion

    def _adapt(self, underrun: bool) -> None:
        """Grow the cushion by a period at an underrun; shrink it by one after CALM_MS of
        none (catch-up then drops that period, in one glide)."""
        if underrun:
            self.cushion = min(self.max_cushion, self.cushion + 1)
            self._calm = 0
            return
        self._calm += 1
        if self._calm >= CALM_MS // self.period_ms:
            self._calm = 0
            self.cushion = max(self.min_cushion, self.cushion - 1)

    def _catch_up(self) -> bool:
        """If the buffer never went below target_depth + n for CATCH_UP_MS, those n periods
        are waiting for nothing: drop them, in one go (one glide rather than many)."""
        self._lowest = min(self._lowest, len(self._buffer))
        self._window += 1
        if self._window < CATCH_UP_MS // self.period_ms:
            return False
        surplus = max(0, self._lowest - self.target_depth)
        self._lowest, self._window = self._buffer.maxlen or 0, 0
        for _ in range(min(surplus, len(self._buffer))):
            self._buffer.popleft()
            self.skipped += 1
        return surplus > 0

    def _next_block(self) -> np.ndarray:
        skipped = self._catch_up()
        try:
            block = self._buffer.popleft()
        except IndexError:
            block = np.zeros(self.period, np.int16)
            self._adapt(not self._dry)
            if not self._dry:
                self.underruns += 1
                ramp = min(RAMP, self.period)  # fade from where the audio stopped
                block[:ramp] = (self._last * np.linspace(1, 0, ramp)).astype(np.int16)
                self._dry = True
        else:
            self._adapt(False)
            if self._dry:  # fade in after silence
                ramp = min(RAMP, len(block))
                block = block.copy()
                block[:ramp] = (block[:ramp] * np.linspace(0, 1, ramp)).astype(np.int16)
                self._dry = False
            elif skipped:  # a period left out: glide from where the audio was, no click
                ramp = min(RAMP, len(block))
                block = block.copy()
                fade = np.linspace(0, 1, ramp)
                block[:ramp] = (self._last * (1 - fade) + block[:ramp] * fade).astype(np.int16)
        block = self._overlay.over(block)
        self._last = int(block[-1])
        return block

    def _io(self) -> None:
        assert self._pcm is not None
        block = self._next_block()
        # Blocks once the device buffer is full: the device's clock paces this loop.
        data = np.repeat(block, self.channels) if self.channels > 1 else block
        if self._pcm.write(data.tobytes()) < 0:
            self._xrun()
        tap = self.tap
        if tap is not None:  # what was played, as it was played: the echo to cancel
            tap(block, self.rate)

    def _idle(self) -> None:
        if self._buffer:  # nobody to play to: keep the buffer from holding stale audio
            self._buffer.popleft()
