#!/usr/bin/env python3
"""Echo cancellation on the ALSA rig: WebRTC's AEC3 (pywebrtc-audio) against speexdsp's.

The rig's headset ``a`` (tests/alsa_rig.py's asoundrc: ALSA's ``file`` plugin over ``null``,
FIFOs) with this script as its sound card and its room: every 5 ms the card takes 5 ms out of
the playback FIFO (the DAC), and every 20 ms hands the capture FIFO one period of what the
microphone hears: that played audio returned through an echo path (a delay, a small room's
impulse response, an attenuation) plus near-end speech, a steady noise and the microphone's
own noise. Capture and Playback are piphone's (audio/alsa.py, real pyalsaaudio threads), with
the two lines phase 2 adds: the playback thread hands each block it has written to the device
to the stages' EchoReference, and the capture thread runs the stages on each block it reads.
So the stages see the delay the ALSA path really adds, and the rig's FIFO besides (a real
card has none: its fill is printed).

Far end: synthetic speech (tests/speechlike.py: a voice's harmonics, speech's spectrum,
syllables and pauses) written to Playback 20 ms at a time, as a call's receive path does.
Scenario (seconds): 0-10 far end alone (single talk), 10-20 near end on top (double talk),
20-28 nobody talks and a fan's steady noise comes on. Each echo delay given is one run.

Stages: on the capture thread, each backend with everything on, as a handsfree call has it.
Each canceller alone (ERLE, convergence, double talk), each suppressor alone (steady noise)
and each backend all on again (CPU) are then fed exactly the blocks the capture thread read,
with exactly the reference blocks the live stage took, in the same order: the same input
gives the same output, the capture thread carries no more than a handsfree call does, and
each stage's CPU is its own (live, the two backends share the capture thread and its caches:
that figure is printed too). CPU: the thread's CPU clock inside the stage, plus the playback
thread's inside the reference tap, per second of audio, against the CPU of a whole call
measured in the same run as scripts/bench/call_cost.py measures the piphone client, sending
the far end's synthetic speech as a handsfree call sends speech (the goal's), and sending
call_cost.py's 440 Hz tone (which libopus codes as music at about a third of speech's cost:
the call the goal was measured against before; printed beside it).

Figures:
  ERLE: 10 log10(microphone energy / output energy) over the blocks where the echo is
    above -50 dBFS, in the last 5 s of single talk.
  convergence: from the far end's first word until the ERLE over 240 ms windows reaches
    20 dB and holds it for a second.
  double talk: the energy of the near-end speech lost through the canceller (NS and AGC2
    off) over the blocks where both talk: its gain in each 20 ms block and 400 Hz band (from
    the cross spectrum of output and near end after the stage's own delay, so residual echo
    and noise hardly count), squared and weighted by the near end's energy there, in dB.
    Also printed: the same through the whole live stage (NS and AGC2 on), less what that
    stage takes of the near end talking alone (AGC2's gain, the suppressors in the far end's
    pauses), and the measure before (the gain's amplitude averaged over the whole double
    talk, which counts a suppressor's gain that moves as a loss: 1 and 0 in turn is -3 dB of
    energy, -6 dB by that measure).
  noise suppression: input level / output level on the steady noise (25-28 s).

Usage:  .venv/bin/python scripts/bench/echo_cancel.py [--delays 40,150] [--echo-db -10]
Run as root; it re-executes itself in a loopback-only network namespace (the call).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import fcntl
import logging
import os
import sys
import tempfile
import termios
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "firmware"))
sys.path.insert(0, str(ROOT))  # tests.alsa_rig and tests.speechlike: the tests' rig and voices

import _common as common  # noqa: E402

RATE = 48_000
PERIOD = 960
TICK = 240  # the card's DAC: 5 ms at a time
CAPTURE_FIFO = 8192  # bytes: 85 ms of s16 mono, Capture's 4 device periods and a little
SINGLE, DOUBLE, NOISE, END = 10.0, 20.0, 20.5, 28.0  # scenario times, s
NOISE_SETTLED = 4.5  # s after the fan comes on: the suppressor has learnt it
ECHO_ACTIVE_DBFS = -50.0
CONVERGED_DB = 20.0
WINDOW_BLOCKS = 12  # 240 ms
BAND_BINS = 8  # 400 Hz of a 20 ms block's spectrum: a cell of the double-talk measure
HOLD_S = 1.0  # converged: CONVERGED_DB held this long
GOAL_ERLE = 25.0
GOAL_CONVERGENCE = 1.0
GOAL_DOUBLE_TALK = 3.0
GOAL_CPU_SHARE = 0.30
# webrtc: the stage as a call runs it (16 kHz); webrtc48k: AEC3 at the capture rate, the version
# before it, measured in the same run for the ratios; speex: the reference.
BACKENDS = ("webrtc", "webrtc48k", "speex")
TITLES = {"webrtc": "WebRTC AEC3 (pywebrtc-audio) at 16 kHz, as a call runs it",
          "webrtc48k": "WebRTC AEC3 at 48 kHz (the version before, for the ratios)",
          "speex": "speexdsp (the reference)"}


@dataclass
class Scene:
    """The far end, and what the card adds at the microphone, from the scenario's start."""

    far: np.ndarray  # int16, written to Playback
    near: np.ndarray  # float, near-end speech at the microphone
    fan: np.ndarray  # float, steady noise
    hiss: np.ndarray  # float, the microphone's own noise

    @classmethod
    def make(cls, near_dbfs: float) -> Scene:
        from tests import speechlike as sl

        far, _ = sl.speech(DOUBLE, 1)
        near, _ = sl.speech(END, 2, level_dbfs=near_dbfs, pitch=(170, 250),
                            formants=(700, 1800, 2900))
        near[: int(SINGLE * RATE)] = 0
        near[int(DOUBLE * RATE):] = 0
        fan = sl.steady_noise(END, 7, level_dbfs=-45)
        fan[: int(NOISE * RATE)] = 0
        return cls(sl.to_int16(far), near, fan, sl.white_noise(END, 4, level_dbfs=-70))


class Card(threading.Thread):
    """Headset a's sound card and its room. Card time is samples since the card started;
    ``played[i]`` is what the DAC played at card time i. The microphone period ending at card
    time c is echo(played up to c - delay) + the scene's near end, fan and hiss (from
    ``start``, the card time at which the far end began to be written)."""

    def __init__(self, rig, *, delay_ms: float, echo_db: float, impulse: np.ndarray,
                 scene: Scene, wide: bool) -> None:
        super().__init__(name="bench-card", daemon=True)
        self.frame_bytes = 8 if wide else 2  # s32 stereo, or s16 mono
        self.cap_fd, self.play_fd = rig["a"].fds
        self.delay = int(delay_ms / 1000 * RATE)
        self.gain = 10 ** (echo_db / 20)
        self.impulse = impulse
        self.scene = scene
        total = int((END + 5) * RATE)
        self.played = np.zeros(total, np.float64)
        self.now = 0  # card time
        self.start_at: int | None = None
        # per period written to the capture FIFO: its bytes -> card period index
        self.periods: dict[bytes, int] = {}
        self.echo = np.zeros(total)
        self.near = np.zeros(total)
        self.fan = np.zeros(total)
        self.fifo_fill: list[int] = []
        self.lost = 0  # capture periods the FIFO had no room for
        self.stop = threading.Event()

    def begin(self) -> None:
        """The far end starts now: the scene's extras start at the next period."""
        self.start_at = (self.now // PERIOD + 1) * PERIOD

    def run(self) -> None:
        deadline = time.perf_counter()
        while not self.stop.is_set() and self.now + PERIOD < len(self.played):
            self._play()
            self.now += TICK
            if self.now % PERIOD == 0:
                self._capture(self.now)
            deadline += TICK / RATE
            late = time.perf_counter() - deadline
            if late > 0.1:  # the machine stalled: resume the pace (as a real card would xrun)
                deadline = time.perf_counter()
            self.stop.wait(max(0.0, deadline - time.perf_counter()))

    def _play(self) -> None:
        waiting = array.array("i", [0])
        fcntl.ioctl(self.play_fd, termios.FIONREAD, waiting)
        self.fifo_fill.append(waiting[0])
        try:
            data = os.read(self.play_fd, TICK * self.frame_bytes)
        except BlockingIOError:
            data = b""
        if self.frame_bytes == 8:  # s32 stereo: the left channel's top 16 bits
            samples = np.frombuffer(data[:len(data) // 8 * 8], "<i4")[::2] >> 16
        else:
            samples = np.frombuffer(data[:len(data) // 2 * 2], np.int16)
        self.played[self.now:self.now + len(samples)] = samples  # the rest: silence

    def _capture(self, end: int) -> None:
        start = end - PERIOD
        low, high = start - self.delay - len(self.impulse) + 1, end - self.delay
        echo = np.zeros(PERIOD)
        if high > 0:  # what played before the card started was silence
            src = np.concatenate((np.zeros(max(0, -low)), self.played[max(0, low):high]))
            echo = np.convolve(src, self.impulse, "valid") * self.gain
        mic = echo.copy()
        if self.start_at is not None and start >= self.start_at:
            s = start - self.start_at
            for part, store in ((self.scene.near, self.near), (self.scene.fan, self.fan)):
                chunk = part[s:s + PERIOD]
                store[start:start + len(chunk)] = chunk
                mic[:len(chunk)] += chunk
            hiss = self.scene.hiss[s:s + PERIOD]
            mic[:len(hiss)] += hiss
        self.echo[start:end] = echo
        data = np.clip(np.round(mic), -32768, 32767).astype(np.int16).tobytes()
        try:
            os.write(self.cap_fd, data)
        except BlockingIOError:
            self.lost += 1
            return
        self.periods[data] = start // PERIOD


@dataclass
class Run:
    """One scenario's blocks: what Capture read and what each stage made of it."""

    delay_ms: float
    inputs: list[np.ndarray] = field(default_factory=list)
    outputs: dict[str, list[np.ndarray]] = field(default_factory=dict)
    figures: dict[str, list] = field(default_factory=dict)  # (block index, EchoFigures)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU-s per audio second
    pairing: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    taken: dict[str, list[np.ndarray]] = field(default_factory=dict)  # reference blocks
    tap_cpu: dict[str, float] = field(default_factory=dict)  # played(), per audio second
    card: Card | None = None
    xruns: int = 0


def make_stage(backend: str, role: str, speex_tail_ms: int, reference=None):
    """A CaptureStage: ``role`` echo (the canceller alone), noise (the suppressor alone) or
    handsfree (all on); its reference a new EchoReference unless one is given."""
    from piphone.audio import alsa
    from piphone.audio.processing import (
        CaptureStage,
        EchoReference,
        ProcessingSettings,
        SpeexBackend,
        load_backend,
        reference_margin,
        stream_delay_hint_ms,
    )

    settings = {"echo": ProcessingSettings(echo_cancellation=True),
                "noise": ProcessingSettings(noise_suppression=True),
                "handsfree": ProcessingSettings.handsfree()}[role]
    delay = stream_delay_hint_ms(alsa.PLAYBACK_PERIOD_MS)
    engine = (SpeexBackend(settings, tail_ms=speex_tail_ms) if backend == "speex" else
              load_backend(settings, "webrtc", stream_delay_ms=delay, webrtc_rate=48_000)
              if backend == "webrtc48k" else
              load_backend(settings, backend, stream_delay_ms=delay))
    if settings.echo_cancellation and reference is None:
        reference = EchoReference(margin=reference_margin(alsa.PLAYBACK_PERIODS,
                                                          alsa.PLAYBACK_PERIOD_MS))
    return CaptureStage(settings, engine, reference)


class Replayed:
    """The reference blocks a live stage took, handed out again in the same order."""

    def __init__(self, blocks: list[np.ndarray]) -> None:
        self._blocks = iter(blocks)

    def take(self, n: int) -> np.ndarray:
        return next(self._blocks)


def replay(run: Run, speex_tail_ms: int) -> None:
    """Each canceller alone and each suppressor alone, fed after the run with exactly the
    blocks (and reference blocks) the capture thread fed the live stages: the same input in
    the same order gives the same output, and the capture thread carries only what a
    handsfree call carries."""
    for backend in BACKENDS:
        for role in ("echo", "noise", "handsfree"):
            reference = Replayed(run.taken[backend]) if role != "noise" else None
            stage = make_stage(backend, role, speex_tail_ms, reference)
            name = f"{backend} {role}" if role != "handsfree" else f"{backend} alone"
            run.outputs[name], run.figures[name] = [], []
            for index, block in enumerate(run.inputs):
                before = stage.figures
                run.outputs[name].append(stage.process(block))
                if stage.figures is not before:
                    run.figures[name].append((index, stage.figures))
            if role == "handsfree":  # its CPU alone, plus the live tap's on the playback side
                run.cpu[name] = (stage.cpu_seconds / max(1, stage.blocks) / (PERIOD / RATE)
                                 + run.tap_cpu[backend])
            stage.close()


def recording(take, into: list):
    def take_and_keep(n: int) -> np.ndarray:
        block = take(n)
        into.append(block)
        return block

    return take_and_keep


async def run_scene(rig, scene: Scene, *, delay_ms: float, echo_db: float, impulse,
                    speex_tail_ms: int, wide: bool) -> Run:
    from piphone.audio.alsa import Capture, Playback

    stages = {f"{b} handsfree": make_stage(b, "handsfree", speex_tail_ms) for b in BACKENDS}
    run = Run(delay_ms, outputs={name: [] for name in stages},
              figures={name: [] for name in stages}, taken={b: [] for b in BACKENDS})
    references = [s.reference for s in stages.values() if s.reference is not None]
    for backend in BACKENDS:  # what each live stage takes, for the replays
        reference = stages[f"{backend} handsfree"].reference
        reference.take = recording(reference.take, run.taken[backend])

    class StagedCapture(Capture):
        """Phase 2's hook: the stage on the capture thread, on every block read."""

        def _emit(self, block):
            run.inputs.append(block)
            index = len(run.inputs) - 1
            for name, stage in stages.items():
                before = stage.figures
                run.outputs[name].append(stage.process(block))
                if stage.figures is not before:
                    run.figures[name].append((index, stage.figures))

    class TappedPlayback(Playback):
        """Phase 2's tap: each block, once written to the device, is the echo reference."""

        def _io(self):
            block = self._next_block()
            data = np.repeat(block, self.channels) if self.channels > 1 else block
            if self._pcm.write(data.tobytes()) < 0:
                self._xrun()
            for reference in references:
                reference.played(block, self.rate)

    # The capture FIFO as deep as Capture's device buffer (4 periods; the rig's default is 2):
    # a capture thread held up that long loses nothing on a real card either.
    fcntl.fcntl(rig["a"].fds[0], fcntl.F_SETPIPE_SZ, CAPTURE_FIFO)
    card = Card(rig, delay_ms=delay_ms, echo_db=echo_db, impulse=impulse, scene=scene,
                wide=wide)
    run.card = card
    capture = StagedCapture(rig["a"].cap)
    playback = TappedPlayback("bench_a_play" if wide else rig["a"].play)
    card.start()
    try:
        capture.start()
        playback.start()
        await asyncio.sleep(0.5)  # both threads running, the FIFOs settled
        loop = asyncio.get_running_loop()
        card.begin()
        started = loop.time()
        for k, at in enumerate(range(0, int(END * RATE), PERIOD)):
            wait = started + k * PERIOD / RATE - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            chunk = scene.far[at:at + PERIOD]
            playback.write(chunk if len(chunk) == PERIOD else np.zeros(PERIOD, np.int16))
        await asyncio.sleep(0.5)  # the tail of the scene reaches the microphone
    finally:
        await asyncio.to_thread(capture.close)
        await asyncio.to_thread(playback.close)
        card.stop.set()
        card.join(2)
    run.xruns = capture.xruns + playback.xruns
    for name, stage in stages.items():
        tap = stage.reference.cpu_seconds if stage.reference is not None else 0.0
        run.cpu[name] = (stage.cpu_seconds + tap) / max(1, stage.blocks) / (PERIOD / RATE)
        run.tap_cpu[name.split()[0]] = tap / max(1, stage.blocks) / (PERIOD / RATE)
        if stage.reference is not None:
            run.pairing[name] = (stage.reference.realigned, stage.reference.short,
                                 stage.reference.margin * 1000 // RATE)
        stage.close()
    return run


# --- analysis ----------------------------------------------------------------------------------
@dataclass
class Figures:
    erle: float | None = None
    convergence: float | None = None
    double_talk: float | None = None  # the canceller alone: the energy of the near end lost
    double_talk_coherent: float | None = None  # the same, as measured before (see attenuation)
    double_talk_all_on: float | None = None  # the live stage all on, less its loss talking alone
    near_alone: float | None = None
    noise: float | None = None
    cpu: float | None = None  # the stage alone (replayed), and its tap, per call-second
    cpu_live: float | None = None  # on the capture thread, beside the other backend's
    reported_erle: float | None = None  # the stage's own EchoFigures, single talk
    lag_ms: float | None = None


def db(numerator: float, denominator: float) -> float:
    return 10 * np.log10(max(numerator, 1e-9) / max(denominator, 1e-9))


def analyse(run: Run) -> tuple[dict[str, Figures], dict]:
    """Per backend: the figures; and facts about the run (mapping, FIFO)."""
    card = run.card
    assert card is not None and card.start_at is not None
    index = [card.periods.get(block.tobytes()) for block in run.inputs]
    mapped = [i for i, p in enumerate(index) if p is not None]
    n = len(run.inputs)
    t = np.full(n, np.nan)  # scenario time of each block's start
    parts = {name: np.zeros((n, PERIOD)) for name in ("echo", "near", "fan")}
    for i in mapped:
        start = index[i] * PERIOD
        t[i] = (start - card.start_at) / RATE
        for name, store in (("echo", card.echo), ("near", card.near), ("fan", card.fan)):
            parts[name][i] = store[start:start + PERIOD]
    mic = np.stack(run.inputs).astype(np.float64)
    loud = 32768.0 ** 2 * 10 ** (ECHO_ACTIVE_DBFS / 10) * PERIOD
    echo_on = np.sum(parts["echo"] ** 2, axis=1) > loud
    near_on = np.sum(parts["near"] ** 2, axis=1) > loud
    results: dict[str, Figures] = {}
    for backend in BACKENDS:
        fig = Figures()
        out = np.stack(run.outputs[f"{backend} echo"]).astype(np.float64)
        lag = stage_lag(out, parts["near"], near_on & ~echo_on)
        fig.lag_ms = lag / RATE * 1000
        out = shift(out, lag)
        single = (t >= 0) & (t < SINGLE) & echo_on & ~near_on
        late = single & (t >= SINGLE - 5)
        fig.erle = db(np.sum(mic[late] ** 2), np.sum(out[late] ** 2)) if late.any() else None
        fig.convergence = convergence(t, single, mic, out)
        both = (t >= SINGLE) & (t < DOUBLE) & echo_on & near_on
        fig.double_talk = attenuation(out[both], parts["near"][both])
        fig.double_talk_coherent = coherent_attenuation(out[both], parts["near"][both])
        alone = (t >= SINGLE) & (t < DOUBLE) & near_on & ~echo_on
        fig.near_alone = attenuation(out[alone], parts["near"][alone])
        live = np.stack(run.outputs[f"{backend} handsfree"]).astype(np.float64)
        live = shift(live, stage_lag(live, parts["near"], near_on & ~echo_on))
        # less the same stage's loss while the near end talks alone: AGC2's gain (about +13 dB
        # here) is in both
        all_on = attenuation(live[both], parts["near"][both])
        all_on_alone = attenuation(live[alone], parts["near"][alone])
        if all_on is not None and all_on_alone is not None:
            fig.double_talk_all_on = all_on - all_on_alone
        noise_out = np.stack(run.outputs[f"{backend} noise"]).astype(np.float64)
        steady = (t >= NOISE + NOISE_SETTLED) & (t < END) & ~echo_on
        if steady.any():
            fig.noise = db(np.sum(mic[steady] ** 2), np.sum(noise_out[steady] ** 2))
        fig.cpu = run.cpu[f"{backend} alone"]
        fig.cpu_live = run.cpu[f"{backend} handsfree"]
        reported = [f.echo_return_loss_enhancement for i, f in run.figures[f"{backend} echo"]
                    if SINGLE - 5 <= t[i] < SINGLE and f.echo_return_loss_enhancement]
        fig.reported_erle = float(np.median(reported)) if reported else None
        results[backend] = fig
    fill = np.array(card.fifo_fill[len(card.fifo_fill) // 4:]) / card.frame_bytes / RATE * 1000
    facts = {"mapped": len(mapped) / max(1, n), "lost": card.lost, "xruns": run.xruns,
             "fifo_ms": float(np.mean(fill)) if len(fill) else 0.0,
             "pairing": run.pairing}
    return results, facts


def shift(out: np.ndarray, lag: int) -> np.ndarray:
    """The stage's output moved ``lag`` samples earlier (its own delay taken out)."""
    flat = out.reshape(-1)
    flat = np.concatenate((flat[lag:], np.zeros(lag)))
    return flat.reshape(out.shape)


def stage_lag(out: np.ndarray, near: np.ndarray, where: np.ndarray) -> int:
    """The stage's own delay: where its output lines up with the near end it let through."""
    o, s = out.reshape(-1), (near * where[:, None]).reshape(-1)
    scores = [float(np.dot(o[k:], s[:len(s) - k])) for k in range(0, 1200)]
    return int(np.argmax(scores))


def attenuation(out: np.ndarray, near: np.ndarray) -> float | None:
    """How much of the near end's energy the stage lost, in dB. In each 20 ms block and each
    400 Hz band (a cell), the near end's gain through the stage: the cross spectrum of output
    and near end over the near end's own (so the residual echo and noise, which do not
    correlate with it, hardly count; magnitude only: the high-pass filter's phase shift is no
    loss); then the energy that gain lets through, summed over the cells, against the near
    end's. A suppressor's gain moves from block to block and band to band, so what survives is
    the mean of the gain's square, not the square of its mean gain (``coherent_attenuation``,
    the measure before): a gain of 1 half of the time and 0 the other half keeps half the
    energy, -3 dB, where the square of its mean says -6 dB."""
    if not len(near) or not np.any(near):
        return None
    window = np.hanning(PERIOD)
    o, s = np.fft.rfft(out * window, axis=1), np.fft.rfft(near * window, axis=1)
    cells = s.shape[1] // BAND_BINS * BAND_BINS  # the Nyquist bin left out
    shape = (len(s), cells // BAND_BINS, BAND_BINS)
    cross = np.abs(np.sum((o[:, :cells] * np.conj(s[:, :cells])).reshape(shape), axis=2))
    own = np.sum((np.abs(s[:, :cells]) ** 2).reshape(shape), axis=2)
    gain = cross / np.maximum(own, 1e-9)
    kept = float(np.sum(gain ** 2 * own) / np.sum(own))
    return -10 * np.log10(kept) if kept > 0 else float("inf")


def coherent_attenuation(out: np.ndarray, near: np.ndarray) -> float | None:
    """The measure before: the near end's gain per frequency over the whole double talk (the
    cross spectrum summed over all blocks), squared and weighted by the near end's spectrum.
    It averages the gain's amplitude over time, so it counts a gain that moves as a loss
    (printed beside the energy it loses, for the figures measured with it)."""
    if not len(near) or not np.any(near):
        return None
    window = np.hanning(PERIOD)
    o, s = np.fft.rfft(out * window, axis=1), np.fft.rfft(near * window, axis=1)
    own = np.sum(np.abs(s) ** 2, axis=0)
    gain = np.abs(np.sum(o * np.conj(s), axis=0)) / np.maximum(own, 1e-9)
    kept = float(np.sum(gain ** 2 * own) / np.sum(own))
    return -10 * np.log10(kept) if kept > 0 else float("inf")


def convergence(t: np.ndarray, single: np.ndarray, mic: np.ndarray,
                out: np.ndarray) -> float | None:
    """From the far end's first word to the first 240 ms window from which the ERLE stays at
    or above CONVERGED_DB through the next second (windows with echo only)."""
    blocks = np.flatnonzero(single)
    if not len(blocks):
        return None
    first = t[blocks[0]]
    windows = []
    for begin in range(int(first * 50), int(SINGLE * 50), WINDOW_BLOCKS):
        inside = single & (t >= begin / 50) & (t < (begin + WINDOW_BLOCKS) / 50)
        if np.count_nonzero(inside) >= 3:
            windows.append((begin / 50, db(np.sum(mic[inside] ** 2), np.sum(out[inside] ** 2))))
    for start, _ in windows:
        held = [erle for at, erle in windows if start <= at < start + HOLD_S]
        if len(held) >= 3 and min(held) >= CONVERGED_DB:
            return max(0.0, start - first)
    return None


# --- report ------------------------------------------------------------------------------------
def fmt(value: float | None, unit: str, digits: int = 1) -> str:
    return "never" if value is None else f"{value:.{digits}f} {unit}"


def report(runs: list[tuple[Run, dict[str, Figures], dict]],
           calls: dict[str, float | None], args) -> None:
    """``calls``: a call's CPU per call-second, sending ``speech`` (the goal's) and a ``tone``
    (call_cost.py's row, which the goal was measured against before)."""
    call_cpu, tone_cpu = calls.get("speech"), calls.get("tone")
    columns = [(run.delay_ms, backend, figs[backend]) for run, figs, _ in runs
               for backend in BACKENDS]
    print(f"\nEcho cancellation on the ALSA rig: echo path {args.echo_db:+.0f} dB through a "
          f"{args.room_ms:.0f} ms room, far end -20 dBFS, near end {args.near_dbfs:.0f} dBFS, "
          f"microphone noise -70 dBFS, fan -45 dBFS; {END:.0f} s per run; the rig's playback "
          f"FIFO {'s16 (42.7' if args.narrow else 's32 stereo (10.7'} ms a page)\n")
    head = f"{'':34}" + "".join(f"{f'{b} {d:.0f} ms':>16}" for d, b, _ in columns)
    print(head)
    print("-" * len(head))
    rows = [
        ("ERLE, single talk (last 5 s)", lambda f: fmt(f.erle, "dB")),
        ("  the stage's own (median second)", lambda f: fmt(f.reported_erle, "dB")),
        ("convergence to 20 dB", lambda f: fmt(f.convergence, "s", 2)),
        ("near end lost in double talk", lambda f: fmt(f.double_talk, "dB")),
        ("  as measured before (amplitude)", lambda f: fmt(f.double_talk_coherent, "dB")),
        ("  all on, less its loss alone", lambda f: fmt(f.double_talk_all_on, "dB")),
        ("near end lost, talking alone", lambda f: fmt(f.near_alone, "dB")),
        ("noise suppression (steady)", lambda f: fmt(f.noise, "dB")),
        ("CPU-s per call-s, all on", lambda f: fmt(f.cpu, "", 4)),
        ("  share of a call (speech)", lambda f: "n/a" if call_cpu is None else
         f"{f.cpu / call_cpu * 100:.0f} %"),
        ("  share of a call (tone)", lambda f: "n/a" if tone_cpu is None else
         f"{f.cpu / tone_cpu * 100:.0f} %"),
        ("  live, beside the other stage", lambda f: fmt(f.cpu_live, "", 4)),
        ("stage's own delay", lambda f: fmt(f.lag_ms, "ms")),
    ]
    for label, show in rows:
        print(f"{label:34}" + "".join(f"{show(f):>16}" for _, _, f in columns))
    print()
    print(f"  a call (piphone client as call_cost.py measures it, same run), sending the far "
          f"end's synthetic speech: {fmt(call_cpu, 'CPU-s per call-second', 4)}; sending "
          f"call_cost.py's 440 Hz tone: {fmt(tone_cpu, 'CPU-s per call-second', 4)}")
    for run, _, facts in runs:
        pairing = ", ".join(f"{name}: {r} realigned, {s} samples short, margin {m} ms"
                            for name, (r, s, m) in facts["pairing"].items()
                            if name.endswith("handsfree"))
        print(f"  run {run.delay_ms:.0f} ms: {facts['mapped'] * 100:.1f} % of blocks traced to "
              f"the card, {facts['lost']} capture periods lost, {facts['xruns']} xruns; the "
              f"rig's playback FIFO held {facts['fifo_ms']:.1f} ms on average (a real card "
              f"holds none of it); pairing {pairing}")
    print("\n16 kHz against 48 kHz, same run (ratio new / before, per delay):")
    for run, figs, _ in runs:
        new, old = figs["webrtc"], figs["webrtc48k"]
        print(f"  {run.delay_ms:.0f} ms: CPU {new.cpu / old.cpu:.2f} x, near end lost in double "
              f"talk {fmt(new.double_talk, 'dB')} against {fmt(old.double_talk, 'dB')}, ERLE "
              f"{fmt(new.erle, 'dB')} against {fmt(old.erle, 'dB')}, the stage's delay "
              f"{fmt(new.lag_ms, 'ms')} against {fmt(old.lag_ms, 'ms')}")
    for backend in BACKENDS:
        print(f"\nGoals, {TITLES[backend]}, worst of the runs:")
        figs = [f for _, b, f in columns if b == backend]
        worst_erle = min((f.erle for f in figs), default=None, key=lambda v: v or -1e9)
        slowest = None if any(f.convergence is None for f in figs) else \
            max(f.convergence for f in figs)
        worst_dt = max((f.double_talk for f in figs if f.double_talk is not None),
                       default=None)
        noise = min((f.noise for f in figs if f.noise is not None), default=None)
        cpu = max(f.cpu for f in figs)
        share = None if call_cpu is None else cpu / call_cpu
        goal(f"ERLE >= {GOAL_ERLE:.0f} dB (single talk, converged)", worst_erle,
             worst_erle is not None and worst_erle >= GOAL_ERLE, "dB")
        goal(f"convergence <= {GOAL_CONVERGENCE:.0f} s", slowest,
             slowest is not None and slowest <= GOAL_CONVERGENCE, "s")
        goal(f"double talk: near end lost <= {GOAL_DOUBLE_TALK:.0f} dB", worst_dt,
             worst_dt is not None and worst_dt <= GOAL_DOUBLE_TALK, "dB")
        print(f"  {'noise suppression on steady noise':44} {fmt(noise, 'dB'):>10}  (figure)")
        goal(f"stage <= {GOAL_CPU_SHARE * 100:.0f} % of a call's CPU (speech)",
             None if share is None else share * 100, share is not None and
             share <= GOAL_CPU_SHARE, "%")
        tone = None if tone_cpu is None else cpu / tone_cpu * 100
        print(f"  {'  of a call sending a tone instead':44} {fmt(tone, '%', 2):>10}  (figure)")


def goal(label: str, value: float | None, ok: bool, unit: str) -> None:
    shown = "not measured" if value is None else f"{value:.2f} {unit}"
    print(f"  {label:44} {shown:>10}  {'met' if ok else 'MISSED'}")


def call_cost(seconds: float, wav: str | None = None) -> float | None:
    """A whole call's CPU per call-second, as call_cost.py measures the piphone client: sending
    its 440 Hz tone, or ``wav``'s speech (what a handsfree call sends: libopus codes a tone as
    music, at about a third of speech's cost)."""
    import call_cost as cost

    row = cost.bench_piphone(cost.Options(seconds=seconds, warmup=2.0, timeout=20.0), wav)
    if row.usage is None:
        print(f"  the call could not be measured: {row.note}", file=sys.stderr)
        return None
    return row.usage.cpu_per_s


# The rig's playback FIFO behind a conversion to s32 stereo: four times the bytes per sample,
# so a pipe page holds 10.7 ms (as mouth_to_ear.py --wide).
WIDE_PCM = ('pcm.bench_a_play {{ type plug slave {{ pcm {{ type file slave.pcm "null" '
            'file "{fifo}" format "raw" }} format S32_LE channels 2 }} }}\n')


async def main_async(args) -> None:
    from tests import speechlike as sl
    from tests.alsa_rig import AlsaRig

    rig = AlsaRig(Path(tempfile.mkdtemp()) / "alsa")
    wide_rc = rig.directory / "wide.asoundrc"
    wide_rc.write_text(WIDE_PCM.format(fifo=rig["a"].play_fifo))
    config = rig.directory / "bench.conf"
    config.write_text(rig.config.read_text() + f"<{wide_rc}>\n")
    os.environ["ALSA_CONFIG_PATH"] = str(config)  # read by alsa-lib at its first open
    scene = Scene.make(args.near_dbfs)
    impulse = sl.room_impulse(3, length_ms=args.room_ms)
    runs = []
    try:
        for delay in args.delays:
            print(f"running: echo delay {delay:.0f} ms ...", file=sys.stderr, flush=True)
            run = await run_scene(rig, scene, delay_ms=delay, echo_db=args.echo_db,
                                  impulse=impulse, speex_tail_ms=args.speex_tail_ms,
                                  wide=not args.narrow)
            replay(run, args.speex_tail_ms)
            figs, facts = analyse(run)
            runs.append((run, figs, facts))
    finally:
        for headset in rig.headsets.values():
            headset.close()
    speech = rig.directory / "speech.wav"
    with wave.open(str(speech), "wb") as out:  # the far end's voice, for a call that talks
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(scene.far.tobytes())
    calls = {}
    for source, wav in (("speech", str(speech)), ("tone", None)):
        print(f"measuring a call's cost ({source}) ...", file=sys.stderr, flush=True)
        calls[source] = await asyncio.to_thread(call_cost, args.call_seconds, wav)
    report(runs, calls, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", default="40,150",
                        help="echo path delays in ms, one run each (default 40,150)")
    parser.add_argument("--echo-db", type=float, default=-10.0,
                        help="echo path attenuation, dB (default -10)")
    parser.add_argument("--room-ms", type=float, default=80.0,
                        help="length of the room's impulse response (default 80)")
    parser.add_argument("--near-dbfs", type=float, default=-20.0,
                        help="near-end speech level at the microphone (default -20)")
    parser.add_argument("--speex-tail-ms", type=int, default=400,
                        help="speexdsp's filter length: it must span the echo delay, the "
                             "rig's FIFO and the room (default 400)")
    parser.add_argument("--narrow", action="store_true",
                        help="play into the rig's s16 FIFO (42.7 ms a page) instead of behind "
                             "a conversion to s32 stereo (10.7 ms, closer to a real card)")
    parser.add_argument("--call-seconds", type=float, default=10.0,
                        help="window for the call's cost (default 10)")
    args = parser.parse_args()
    args.delays = [float(d) for d in args.delays.split(",")]
    common.ensure_isolated_network(sys.argv)
    common.install_signal_cleanup()
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
