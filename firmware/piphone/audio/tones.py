"""Call-progress tones, DTMF and alert sounds as int16 mono audio (numpy only).

Two ways to get sound:

- one-shot arrays: `render(spec, seconds)`, `dtmf(digit)`, `dtmf_sequence(digits)`,
  `mute_beep()`, `warning_chirp()`, `tone(freqs, seconds)`;
- endless cadenced sounds: `TonePlayer(spec)` hands out successive 20 ms frames forever (ring,
  ringback, dial, busy, reconnecting), so a playback thread can pull one frame per period.

Levels are the *peak* level of the whole sound in dBFS: the components of a dual tone share it
equally, so no tone can clip whatever its level (0 dBFS at most). Every on/off edge gets a short
raised-cosine fade so nothing clicks. `mix(a, b)` adds a tone into a headset frame with
saturation. Knows nothing of calls.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..dtmf import PAUSE
from ..pcm import RINGBACK_CADENCE, RINGBACK_FREQUENCIES

SAMPLE_RATE = 48000
FRAME_MS = 20
DEFAULT_LEVEL_DBFS = -12.0
DEFAULT_FADE_MS = 5.0
INT16_MAX = 32767
INT16_MIN = -32768

# DTMF keypad: row (low group) and column (high group) frequencies, ITU-T Q.23.
DTMF_ROWS = (697, 770, 852, 941)
DTMF_COLS = (1209, 1336, 1477, 1633)
DTMF_KEYS = ("123A", "456B", "789C", "*0#D")
# What the Twilio SDK plays locally per digit: a 100 ms tone every 200 ms; 'w' pauses 500 ms.
DTMF_DURATION_S = 0.1
DTMF_GAP_S = 0.1
DTMF_PAUSE_S = PAUSE  # piphone/dtmf.py


@dataclass(frozen=True)
class ToneSpec:
    """A (possibly cadenced) sum of sines.

    pattern: seconds on, off, on, off, ... repeated forever; empty means continuous.
    """

    freqs: tuple[float, ...]
    pattern: tuple[float, ...] = ()
    level_dbfs: float = DEFAULT_LEVEL_DBFS
    fade_ms: float = DEFAULT_FADE_MS

    def __post_init__(self) -> None:
        # Accept lists from config; store tuples so specs stay hashable and immutable.
        object.__setattr__(self, "freqs", tuple(self.freqs))
        object.__setattr__(self, "pattern", tuple(self.pattern))
        _check_freqs(self.freqs)
        _check_pattern(self.pattern)
        _check_level(self.level_dbfs)
        _check_fade(self.fade_ms)


def _is_number(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _check_freqs(freqs: Sequence[float], rate: int = SAMPLE_RATE) -> None:
    if not freqs:
        raise ValueError("a tone needs at least one frequency")
    for f in freqs:
        if not (_is_number(f) and 0 < f < rate / 2):
            raise ValueError(
                f"tone frequency must be in (0, {rate / 2:g}) Hz at {rate} Hz, got {f!r}"
            )


def _check_pattern(pattern: Sequence[float]) -> None:
    if len(pattern) % 2:
        raise ValueError(
            f"cadence must be pairs of on/off seconds (even length), got {tuple(pattern)!r}"
        )
    for d in pattern:
        if not (_is_number(d) and d > 0):
            raise ValueError(
                f"cadence durations must be positive seconds, got {d!r} in {tuple(pattern)!r}"
            )


def _check_level(level_dbfs: float) -> None:
    if not (_is_number(level_dbfs) and level_dbfs <= 0):
        raise ValueError(f"level must be a finite dBFS value <= 0, got {level_dbfs!r}")


def _check_fade(fade_ms: float) -> None:
    if not (_is_number(fade_ms) and 0 <= fade_ms <= 50):
        raise ValueError(f"fade_ms must be within 0..50 ms, got {fade_ms!r}")


def _check_rate(rate: int) -> None:
    if not (isinstance(rate, int) and rate > 0):
        raise ValueError(f"sample rate must be a positive integer, got {rate!r}")


def _seconds_to_samples(seconds: float, rate: int) -> int:
    if not (_is_number(seconds) and seconds >= 0):
        raise ValueError(f"duration must be >= 0 seconds, got {seconds!r}")
    return round(seconds * rate)


def peak_amplitude(level_dbfs: float) -> float:
    """Peak amplitude in int16 units for a level in dBFS (0 dBFS = 32767)."""
    _check_level(level_dbfs)
    return INT16_MAX * 10.0 ** (level_dbfs / 20.0)


# --- standard sounds ------------------------------------------------------------------------


def ring_spec(
    freqs: Sequence[float] = (440, 480),
    pattern: Sequence[float] = (2.0, 4.0),
    level_dbfs: float = DEFAULT_LEVEL_DBFS,
) -> ToneSpec:
    """The ringer; default North American 440+480 Hz, 2 s on / 4 s off."""
    if not pattern:
        raise ValueError("a ring cadence needs at least one on/off pair")
    return ToneSpec(tuple(freqs), tuple(pattern), level_dbfs)


RING = ring_spec()
RINGBACK = ToneSpec(RINGBACK_FREQUENCIES, RINGBACK_CADENCE)  # North American audible ringing
DIAL_TONE = ToneSpec((350, 440))  # continuous
BUSY = ToneSpec((480, 620), (0.5, 0.5))
# Reconnecting: two soft pips every 2 s; distinct from busy and from the warning chirp.
RECONNECTING = ToneSpec((660,), (0.12, 0.12, 0.12, 1.64), level_dbfs=-18.0)


# --- rendering --------------------------------------------------------------------------------


def _fade_gain(distance: np.ndarray, fade_len: int) -> np.ndarray:
    """Raised-cosine ramp by distance (samples) from the nearest edge; 1.0 beyond the fade.

    The ramp never reaches 0 inside an on period, so every on-sample is really "on".
    """
    if fade_len <= 0:
        return np.ones(distance.shape)
    d = np.minimum(distance, fade_len).astype(np.float64)
    return 0.5 - 0.5 * np.cos(np.pi * (d + 1) / (fade_len + 1))


def _segments(pattern: Sequence[float], rate: int) -> np.ndarray:
    """Cumulative sample boundaries of the cadence: [0, end_on1, end_off1, ...]."""
    lengths = [_seconds_to_samples(d, rate) for d in pattern]
    if any(n == 0 for n in lengths):
        raise ValueError(f"cadence {tuple(pattern)!r} has a segment shorter than one sample")
    return np.concatenate(([0], np.cumsum(lengths)))


def cadence_envelope(
    pattern: Sequence[float], start: int, n: int, rate: int = SAMPLE_RATE, fade_ms: float = 0.0
) -> np.ndarray:
    """Gain (0..1) of samples start..start+n of a repeating on/off pattern.

    Exactly 0 in off periods and > 0 on every sample of an on period.
    """
    _check_pattern(pattern)
    if not pattern:
        return np.ones(n)
    bounds = _segments(pattern, rate)
    pos = (start + np.arange(n, dtype=np.int64)) % int(bounds[-1])
    seg = np.searchsorted(bounds, pos, side="right") - 1
    since = pos - bounds[seg]
    until = bounds[seg + 1] - 1 - pos
    gain = _fade_gain(np.minimum(since, until), round(fade_ms * rate / 1000))
    gain[seg % 2 == 1] = 0.0  # odd segments are the "off" periods
    return gain


def _oscillate(freqs: Sequence[float], phases: np.ndarray, n: int, rate: int) -> np.ndarray:
    """Mean of unit cosines for n samples from the given phases (radians)."""
    steps = 2.0 * np.pi * np.asarray(freqs, dtype=np.float64) / rate
    t = np.arange(n, dtype=np.float64)
    return np.cos(phases[:, None] + steps[:, None] * t).mean(axis=0)


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), INT16_MIN, INT16_MAX).astype(np.int16)


class TonePlayer:
    """Endless frames of a ToneSpec: phase-continuous oscillators gated by the cadence.

    Oscillators keep running through off periods, so every sample is a pure function of its
    index; frames of any size join seamlessly. Not thread-safe: one reader.
    """

    def __init__(self, spec: ToneSpec, rate: int = SAMPLE_RATE, frame_ms: int = FRAME_MS):
        _check_rate(rate)
        _check_freqs(spec.freqs, rate)
        self.spec = spec
        self.rate = rate
        self.frame_samples = rate * frame_ms // 1000
        if self.frame_samples <= 0:
            raise ValueError(f"frame_ms too small for rate {rate}: {frame_ms!r}")
        if spec.pattern:
            _segments(spec.pattern, rate)  # reject sub-sample cadences up front
        self._amplitude = peak_amplitude(spec.level_dbfs)
        self._steps = 2.0 * np.pi * np.asarray(spec.freqs, dtype=np.float64) / rate
        self.reset()

    def set_level(self, level_dbfs: float) -> None:
        """Play on at another level, in phase and in cadence (the ringer's volume keys while it
        rings). One float assignment: safe against the playback thread reading."""
        self._amplitude = peak_amplitude(level_dbfs)

    def reset(self) -> None:
        """Start again at the beginning of the first on period."""
        self.position = 0  # samples handed out so far
        self._phases = np.zeros(len(self.spec.freqs))

    def read(self, n: int) -> np.ndarray:
        """The next n samples."""
        env = cadence_envelope(self.spec.pattern, self.position, n, self.rate, self.spec.fade_ms)
        wave = _oscillate(self.spec.freqs, self._phases, n, self.rate)
        # Keep phases wrapped so precision does not decay over days of dial tone.
        self._phases = np.mod(self._phases + self._steps * n, 2.0 * np.pi)
        self.position += n
        return _to_int16(self._amplitude * env * wave)

    def next_frame(self) -> np.ndarray:
        return self.read(self.frame_samples)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self

    def __next__(self) -> np.ndarray:
        return self.next_frame()


def render(spec: ToneSpec, seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first `seconds` of a ToneSpec, from the start of its cadence."""
    return TonePlayer(spec, rate).read(_seconds_to_samples(seconds, rate))


def tone(
    freqs: Sequence[float],
    seconds: float,
    level_dbfs: float = DEFAULT_LEVEL_DBFS,
    rate: int = SAMPLE_RATE,
    fade_ms: float = DEFAULT_FADE_MS,
) -> np.ndarray:
    """A single burst of summed sines, faded in and out."""
    return _burst(freqs, seconds, level_dbfs, rate, fade_ms,
                  lambda n: _oscillate(freqs, np.zeros(len(freqs)), n, rate))


def _burst(freqs: Sequence[float], seconds: float, level_dbfs: float, rate: int,
           fade_ms: float, wave: Callable[[int], np.ndarray]) -> np.ndarray:
    """``wave(n)`` (n samples within -1..1 of the given frequencies) as int16 at
    ``level_dbfs``, faded in and out: what tone() and chirp() share."""
    _check_rate(rate)
    _check_freqs(freqs, rate)
    n = _seconds_to_samples(seconds, rate)
    return _to_int16(peak_amplitude(level_dbfs) * _burst_envelope(n, fade_ms, rate) * wave(n))


def _burst_envelope(n: int, fade_ms: float, rate: int) -> np.ndarray:
    """One on period exactly n samples long, faded against both of its ends."""
    _check_fade(fade_ms)
    idx = np.arange(n)
    return _fade_gain(np.minimum(idx, n - 1 - idx), round(fade_ms * rate / 1000))


def silence(seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    _check_rate(rate)
    return np.zeros(_seconds_to_samples(seconds, rate), dtype=np.int16)


# --- DTMF -------------------------------------------------------------------------------------


def dtmf_freqs(digit: str) -> tuple[int, int]:
    """(row Hz, column Hz) of a keypad character 0-9 * # A-D (a-d accepted)."""
    if isinstance(digit, str) and len(digit) == 1:
        key = digit.upper()
        for r, keys in enumerate(DTMF_KEYS):
            c = keys.find(key)
            if c >= 0:
                return DTMF_ROWS[r], DTMF_COLS[c]
    raise ValueError(f"not a DTMF character: {digit!r} (expected one of 0-9 * # A-D)")


def dtmf(
    digit: str,
    duration_s: float = DTMF_DURATION_S,
    gap_s: float = DTMF_GAP_S,
    level_dbfs: float = DEFAULT_LEVEL_DBFS,
    rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """One key's dual tone for duration_s, followed by gap_s of silence."""
    tone_part = tone(dtmf_freqs(digit), duration_s, level_dbfs, rate)
    return np.concatenate((tone_part, silence(gap_s, rate)))


def dtmf_sequence(
    digits: str,
    duration_s: float = DTMF_DURATION_S,
    gap_s: float = DTMF_GAP_S,
    level_dbfs: float = DEFAULT_LEVEL_DBFS,
    rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Digits as sendDigits plays them locally; 'w' is a 0.5 s pause."""
    for d in digits:
        if d != "w":
            dtmf_freqs(d)  # validate all before rendering any
    parts = [
        silence(DTMF_PAUSE_S, rate) if d == "w" else dtmf(d, duration_s, gap_s, level_dbfs, rate)
        for d in digits
    ]
    return np.concatenate(parts) if parts else silence(0, rate)


# --- alerts -----------------------------------------------------------------------------------


def mute_beep(level_dbfs: float = -18.0, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A short, quiet 440 Hz beep reminding the user that the call is muted."""
    return tone((440,), 0.12, level_dbfs, rate)


def chirp(
    f_start: float,
    f_end: float,
    seconds: float,
    level_dbfs: float = DEFAULT_LEVEL_DBFS,
    rate: int = SAMPLE_RATE,
    fade_ms: float = DEFAULT_FADE_MS,
) -> np.ndarray:
    """A linear frequency sweep, faded in and out."""

    def sweep(n: int) -> np.ndarray:
        freqs = np.linspace(f_start, f_end, n)
        # Phase is the running sum of the instantaneous frequency, so it never jumps.
        return np.cos(2.0 * np.pi * (np.cumsum(freqs) - freqs) / rate)

    return _burst((f_start, f_end), seconds, level_dbfs, rate, fade_ms, sweep)


def warning_chirp(level_dbfs: float = -15.0, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A short rising sweep, 600 -> 1200 Hz in 150 ms: call quality warning."""
    return chirp(600.0, 1200.0, 0.15, level_dbfs, rate)


# --- mixing -----------------------------------------------------------------------------------


def mix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a + b as int16 with saturation (no wrap-around).

    The shorter input counts as silence past its end, so a short beep can be mixed onto the
    start of a longer frame; the result is as long as the longer one.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.dtype != np.int16 or b.dtype != np.int16:
        raise TypeError(f"mix needs int16 audio, got {a.dtype} and {b.dtype}")
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError("mix needs mono (1-D) audio")
    out = np.zeros(max(len(a), len(b)), dtype=np.int32)
    out[: len(a)] += a
    out[: len(b)] += b
    return np.clip(out, INT16_MIN, INT16_MAX).astype(np.int16)


class Clip:
    """A one-shot sound read out in pieces (silence past its end); ``done`` once all read."""

    def __init__(self, samples: np.ndarray) -> None:
        self._samples = np.asarray(samples, dtype=np.int16)
        self._pos = 0

    @property
    def done(self) -> bool:
        return self._pos >= len(self._samples)

    def read(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.int16)
        chunk = self._samples[self._pos:self._pos + n]
        out[:len(chunk)] = chunk
        self._pos += n
        return out


class Overlay:
    """The one sound mixed over what a device plays (a ring, ringback, a beep): a tone until
    stopped, or a clip until its end; a new sound replaces the one before. Swapped by one
    assignment, so the loop may change it while the playback thread mixes it."""

    def __init__(self) -> None:
        self._sound: TonePlayer | Clip | None = None

    def tone(self, spec: ToneSpec, rate: int) -> None:
        self._sound = TonePlayer(spec, rate=rate)

    def clip(self, samples: np.ndarray) -> None:
        self._sound = Clip(samples)

    def stop(self) -> None:
        self._sound = None

    def set_level(self, level_dbfs: float) -> bool:
        """The tone playing goes on at ``level_dbfs`` (in cadence); False if none plays."""
        sound = self._sound
        if isinstance(sound, TonePlayer):
            sound.set_level(level_dbfs)
            return True
        return False

    def over(self, block: np.ndarray) -> np.ndarray:
        """``block`` with the sound's next samples mixed in."""
        sound = self._sound
        if sound is None:
            return block
        block = mix(block, sound.read(len(block)))
        if isinstance(sound, Clip) and sound.done and self._sound is sound:
            self._sound = None
        return block
