"""The ALSA test rig: real pyalsaaudio on ALSA's ``file`` plugin over the ``null`` PCM.

A test-only config (``ALSA_CONFIG_PATH`` = the system alsa.conf, then ours) defines for each
headset ``piphone_<name>_cap`` and ``piphone_<name>_play``. Both are FIFOs held open by the
rig (O_RDWR, so ALSA's open never waits for a peer) and shrunk to one page, so that one rig
thread can act as the sound card's clock: every 20 ms it writes one period of the headset's
source into the capture FIFO (dropped if nobody reads, like a microphone) and takes one period
out of the playback FIFO into ``<name>_play.raw`` (s16le mono 48 kHz). The null PCM itself has
no clock: without the rig's pacing, playback would run as fast as the CPU.

``echo(delay_ms, gain_db)`` makes a headset a speakerphone in a room: its microphone also
hears what its earpiece played, ``delay_ms`` later and ``gain_db`` down. Its card plays and
records on one clock: microphone sample k hears played sample k - delay, counted from the
moment the echo began (a tick that found less than a period in the FIFO takes the rest at the
next, so nothing shifts); ``echo_level`` says how loud the echo was.

``unplug(name)`` makes reads, writes and opens of that headset's PCMs raise ALSAAudioError,
as a pulled USB headset does (the file plugin cannot fail a read by itself: alsa-lib 1.2.8 logs
read errors of ``infile`` and returns garbage); ``replug(name)`` undoes it.
"""

from __future__ import annotations

import fcntl
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import alsaaudio
import numpy as np
import pytest

from piphone.audio import alsa

RATE = 48_000
PERIOD = 960
PERIOD_BYTES = PERIOD * 2
QUARTER = PERIOD // 4  # 5 ms: the DAC of a headset with echo
HEADSETS = ("a", "b", "c", "d")
SYSTEM_CONF = "/usr/share/alsa/alsa.conf"


class Headset:
    """One rig headset: what its microphone hears and what its earpiece played."""

    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.cap = f"piphone_{name}_cap"
        self.play = f"piphone_{name}_play"
        self.cap_fifo = directory / f"{name}_cap.fifo"
        self.play_fifo = directory / f"{name}_play.fifo"
        self.recording = directory / f"{name}_play.raw"
        self.recording.write_bytes(b"")
        self.unplugged = False
        self._source: np.ndarray = np.zeros(PERIOD, np.int16)
        self._pos = 0
        self._echo_gain = 0.0
        self._echo_delay = 0
        self._played = np.zeros(RATE, np.float64)  # the last second taken from playback
        self._played_total = 0  # samples taken from playback since the echo began
        self._heard_total = 0  # microphone samples since then
        self.echo_log: list[tuple[float, float]] = []  # (monotonic time, echo energy) a tick
        self._lock = threading.Lock()
        self.fds: list[int] = []
        for fifo in (self.cap_fifo, self.play_fifo):
            os.mkfifo(fifo)
            fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 4096)  # two periods: little stale audio
            self.fds.append(fd)

    def asoundrc(self) -> str:
        return (f'pcm.{self.cap} {{ type file slave.pcm "null" file "/dev/null" '
                f'infile "{self.cap_fifo}" format "raw" }}\n'
                f'pcm.{self.play} {{ type file slave.pcm "null" file "{self.play_fifo}" '
                f'format "raw" }}\n')

    def speak(self, samples: np.ndarray) -> None:
        """Loop these int16 samples into the microphone from now on."""
        with self._lock:
            self._source, self._pos = np.asarray(samples, np.int16), 0

    def tone(self, frequency: float, level_dbfs: float = -12.0) -> None:
        n = np.arange(RATE)  # one second: whole cycles of a whole-Hz tone
        amplitude = 32767 * 10 ** (level_dbfs / 20)
        self.speak(amplitude * np.sin(2 * math.pi * frequency / RATE * n))

    def echo(self, delay_ms: float, gain_db: float) -> None:
        """From now on the microphone hears the earpiece, delay_ms later, gain_db down."""
        with self._lock:
            self._echo_delay = int(delay_ms * RATE / 1000)
            self._echo_gain = 10 ** (gain_db / 20)
            self._played_total = self._heard_total = 0
        # Capture's 4 device periods fit (a capture thread held up loses nothing)
        fcntl.fcntl(self.fds[0], fcntl.F_SETPIPE_SZ, 8192)

    def echo_level(self, since: float) -> float:
        """RMS (int16 units) of the echo the microphone heard since ``since`` (monotonic)."""
        energies = [e for t, e in self.echo_log if t >= since]
        return math.sqrt(sum(energies) / (len(energies) * PERIOD)) if energies else 0.0

    def silence(self) -> None:
        self.speak(np.zeros(PERIOD, np.int16))

    def _next_period(self) -> bytes:
        with self._lock:
            src, pos = self._source, self._pos
            idx = (pos + np.arange(PERIOD)) % len(src)
            self._pos = (pos + PERIOD) % len(src)
        return src[idx].tobytes()

    def tick(self, quarter: int = 0) -> None:
        """A quarter of the card's 20 ms period: at quarter 0 the microphone's period goes
        out and (without echo) the earpiece's is taken; with echo the earpiece is taken 5 ms
        at a time, as a real card's DAC plays (so the playback thread writes 5 ms at a time,
        and the pairing of played and heard samples does not swing by 20 ms)."""
        cap_fd, play_fd = self.fds
        echoing = bool(self._echo_gain)
        if quarter == 0:
            period = self._next_period()
            if echoing:
                period = self._with_echo(period)
            try:
                os.write(cap_fd, period)
            except BlockingIOError:
                pass  # nobody is capturing: the sound is lost, as in a real microphone
        elif not echoing:
            return
        want = PERIOD
        if echoing:  # a tick that found less takes the rest now: nothing shifts
            due = self._heard_total - PERIOD + (quarter + 1) * QUARTER
            want = min(2 * QUARTER, max(QUARTER, due - self._played_total))
        try:
            data = os.read(play_fd, 2 * want)
        except BlockingIOError:
            return
        with open(self.recording, "ab") as out:
            out.write(data)
        if echoing:
            played = np.frombuffer(data[:len(data) // 2 * 2], np.int16)
            self._played = np.concatenate((self._played, played))[-RATE:]
            self._played_total += len(played)

    def _with_echo(self, period: bytes) -> bytes:
        """Microphone samples [heard, heard + PERIOD) hear played ones ``delay`` before."""
        idx = self._heard_total - self._echo_delay + np.arange(PERIOD)
        first = self._played_total - len(self._played)  # index of self._played[0]
        ok = (idx >= max(first, 0)) & (idx < self._played_total)
        echo = np.zeros(PERIOD)
        echo[ok] = self._played[idx[ok] - first] * self._echo_gain
        self._heard_total += PERIOD
        self.echo_log.append((time.monotonic(), float(np.dot(echo, echo))))
        mixed = np.frombuffer(period, np.int16) + echo
        return np.clip(np.round(mixed), -32768, 32767).astype(np.int16).tobytes()

    def recorded(self) -> np.ndarray:
        """Everything played so far, int16 mono 48 kHz."""
        data = self.recording.read_bytes()
        return np.frombuffer(data[:len(data) // 2 * 2], np.int16)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []


class FaultyPCM:
    """A real PCM that raises like an unplugged device while its headset is unplugged."""

    def __init__(self, pcm: alsaaudio.PCM, headset: Headset) -> None:
        self._pcm, self._headset = pcm, headset

    def _check(self) -> None:
        if self._headset.unplugged:
            raise alsaaudio.ALSAAudioError(f"No such device [{self._pcm.info()['name']}]")

    def read(self):
        self._check()
        return self._pcm.read()

    def write(self, data):
        self._check()
        return self._pcm.write(data)

    def __getattr__(self, name):
        return getattr(self._pcm, name)


class AlsaRig:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._real_open = alsa.open_pcm
        self.headsets = {name: Headset(directory, name) for name in HEADSETS}
        rc = directory / "asoundrc"
        rc.write_text("".join(h.asoundrc() for h in self.headsets.values()))
        self.config = directory / "alsa.conf"
        self.config.write_text(f"<{SYSTEM_CONF}>\n<{rc}>\n")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._clock, name="alsa-rig", daemon=True)

    def __getitem__(self, name: str) -> Headset:
        return self.headsets[name]

    def _clock(self) -> None:
        deadline = time.monotonic()
        quarter = 0
        while not self._stop.is_set():
            for headset in self.headsets.values():
                headset.tick(quarter)
            quarter = (quarter + 1) % 4
            deadline += QUARTER / RATE
            late = time.monotonic() - deadline
            if late > 0.1:  # the machine stalled: resume the pace from now
                deadline = time.monotonic()
            self._stop.wait(max(0.0, deadline - time.monotonic()))

    def open_pcm(self, kind, device, rate, periods, periodsize=None):
        headset = next((h for h in self.headsets.values() if device in (h.cap, h.play)), None)
        if headset is not None and headset.unplugged:
            raise alsaaudio.ALSAAudioError(f"No such device [{device}]")
        pcm = self._real_open(kind, device, rate, periods, periodsize)
        return pcm if headset is None else FaultyPCM(pcm, headset)

    def unplug(self, name: str) -> None:
        self.headsets[name].unplugged = True

    def replug(self, name: str) -> None:
        self.headsets[name].unplugged = False

    def start(self, monkeypatch) -> None:
        monkeypatch.setenv("ALSA_CONFIG_PATH", str(self.config))
        monkeypatch.setattr(alsa, "open_pcm", self.open_pcm)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for headset in self.headsets.values():
            headset.close()  # a capture still blocked on its FIFO now reads EOF and returns


@pytest.fixture
def alsa_rig(tmp_path, monkeypatch) -> Iterator[AlsaRig]:
    """Headsets ``a``..``d`` on ALSA's file plugin; see the module's docstring."""
    rig = AlsaRig(tmp_path / "alsa")
    rig.start(monkeypatch)
    try:
        yield rig
    finally:
        rig.close()
    # No ALSA thread outlives its test (close() joins them; a leak here is a bug).
    left = [t.name for t in threading.enumerate()
            if t.name.startswith(("alsa-capture", "alsa-playback")) and t.is_alive()]
    assert not left, f"ALSA threads left running: {left}"
