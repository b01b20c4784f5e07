"""The phone's sounds (phone.Sounds) on audio/: the ringer on the ring device, call-progress
tones, beeps and DTMF in the headset, and the call's volume.

Each Playback mixes one sound over what it plays (audio/alsa.py), so a sound replaces the one
before; the phone never needs two at once on one device.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Protocol

import numpy as np

from ..audio import tones
from ..audio.alsa import Playback
from .config import AlertsConfig

log = logging.getLogger(__name__)

TONES = {"dial": tones.DIAL_TONE, "ringback": tones.RINGBACK,
         "reconnecting": tones.RECONNECTING, "busy": tones.BUSY}


def gain_of(step: int) -> float:
    """Volume step 0..10 -> linear gain; 7 is unity, each step about 3 dB, 0 is silent."""
    return 0.0 if step <= 0 else 10 ** ((step - 7) * 3 / 20)


def ringer_spec(ring: tones.ToneSpec, step: int) -> tones.ToneSpec | None:
    """The ring tone at volume ``step``: 7 is the configured level, each step about 3 dB
    (never above 0 dBFS), 0 is silent (None: nothing plays)."""
    if step <= 0:
        return None
    return replace(ring, level_dbfs=min(0.0, ring.level_dbfs + (step - 7) * 3))


class Gained(Protocol):
    """A call's earpiece sink (audio/tracks.py's PlaybackSink): the volume is its gain."""

    gain: float


def _beep(name: str) -> np.ndarray:
    if name == "warning":
        return tones.warning_chirp()
    if name == "mute":
        return tones.mute_beep()
    if name == "waiting":  # call waiting: two short 440 Hz pips
        pip = tones.tone((440,), 0.1, -15.0)
        return np.concatenate((pip, tones.silence(0.1), pip))
    if name == "hold":  # a call is on hold: one soft falling pair, on the ringer
        return np.concatenate((tones.tone((660,), 0.12, -18.0), tones.tone((495,), 0.18, -18.0)))
    raise ValueError(f"unknown beep {name!r}")


class AudioSounds:
    """Sounds on Playback streams (either may be None: no such device, nothing plays)."""

    def __init__(self, headset: Playback | None, ringer: Playback | None,
                 alerts: AlertsConfig) -> None:
        self.headset = headset
        self.ringer = ringer
        self.alerts = alerts
        self.sinks: list[Gained] = []  # the sinks of recent calls: their gain is the volume
        self.gain = gain_of(alerts.volume)
        self.ring_spec: tones.ToneSpec | None = ringer_spec(alerts.ring, alerts.ringer_volume)
        self.ringing = False

    def ring(self, on: bool) -> None:
        self.ringing = on
        if self.ringer is None:
            return
        if on and self.ring_spec is not None:
            self.ringer.play_tone(self.ring_spec)
        else:
            self.ringer.stop_sound()

    def tone(self, name: str | None) -> None:
        if self.headset is None:
            return
        if name is None:
            self.headset.stop_sound()
        else:
            self.headset.play_tone(TONES[name])

    def beep(self, name: str) -> None:
        # the hold reminder is for a handset that is down: it sounds where the ringer does
        device = self.ringer or self.headset if name == "hold" else self.headset
        if device is not None:
            device.play_clip(_beep(name))

    def dtmf(self, digit: str) -> None:
        if self.headset is not None:
            self.headset.play_clip(tones.dtmf(digit))

    def volume(self, step: int) -> None:
        self.gain = gain_of(step)
        for sink in self.sinks:
            sink.gain = self.gain

    def ringer_volume(self, step: int) -> None:
        """The ringer at this step: the ring going on changes at once, in its cadence (a
        volume key pressed while it rings), and step 0 silences it."""
        self.ring_spec = ringer_spec(self.alerts.ring, step)
        if not self.ringing or self.ringer is None:
            return
        if self.ring_spec is None:
            self.ringer.stop_sound()
        elif not self.ringer.set_tone_level(self.ring_spec.level_dbfs):
            self.ringer.play_tone(self.ring_spec)  # it was silenced (step 0) or a beep played


class NullSounds:
    """No sound device ([audio] headset = "none"): the phone works silently."""

    def ring(self, on: bool) -> None:
        log.debug("ringer %s", "on" if on else "off")

    def tone(self, name: str | None) -> None:
        log.debug("tone %s", name)

    def beep(self, name: str) -> None:
        log.debug("beep %s", name)

    def dtmf(self, digit: str) -> None:
        log.debug("dtmf %s", digit)

    def volume(self, step: int) -> None:
        log.debug("volume %d", step)

    def ringer_volume(self, step: int) -> None:
        log.debug("ringer volume %d", step)
