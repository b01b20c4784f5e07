"""appliance/sounds.py: the phone's sound names become tones on the right Playback."""

from __future__ import annotations

import numpy as np
import pytest

from piphone.appliance.config import AlertsConfig
from piphone.appliance.sounds import AudioSounds, NullSounds, gain_of
from piphone.audio import tones


class FakePlayback:
    def __init__(self) -> None:
        self.sound = None

    def play_tone(self, spec):
        self.sound = spec

    def play_clip(self, samples):
        self.sound = samples

    def stop_sound(self):
        self.sound = None

    def set_tone_level(self, level_dbfs):
        if not isinstance(self.sound, tones.ToneSpec):
            return False
        self.level = level_dbfs
        return True


def test_ring_goes_to_the_ringer_with_the_configured_cadence():
    headset, ringer = FakePlayback(), FakePlayback()
    alerts = AlertsConfig(ring=tones.ring_spec(pattern=(1.0, 2.0)))
    sounds = AudioSounds(headset, ringer, alerts)
    sounds.ring(True)
    assert ringer.sound.pattern == (1.0, 2.0) and headset.sound is None
    sounds.ring(False)
    assert ringer.sound is None


def test_ringer_volume_changes_the_ring_going_on():
    ringer = FakePlayback()
    alerts = AlertsConfig(ring=tones.ring_spec())
    sounds = AudioSounds(None, ringer, alerts)
    sounds.ringer_volume(5)  # idle: the next ring's level, nothing plays
    assert ringer.sound is None
    sounds.ring(True)
    assert ringer.sound.level_dbfs == alerts.ring.level_dbfs - 6
    sounds.ringer_volume(6)  # while it rings: at once, in its cadence (not restarted)
    assert ringer.level == alerts.ring.level_dbfs - 3
    sounds.ringer_volume(0)
    assert ringer.sound is None  # silenced, still ringing
    sounds.ringer_volume(7)
    assert ringer.sound.level_dbfs == alerts.ring.level_dbfs  # back on
    sounds.ring(False)
    sounds.ringer_volume(8)
    assert ringer.sound is None


def test_tones_beeps_and_dtmf_go_to_the_headset():
    headset = FakePlayback()
    sounds = AudioSounds(headset, None, AlertsConfig())
    sounds.ring(True)  # no ringer: nothing, no error
    sounds.tone("dial")
    assert headset.sound == tones.DIAL_TONE
    sounds.tone("ringback")
    assert headset.sound == tones.RINGBACK
    sounds.tone(None)
    assert headset.sound is None
    sounds.dtmf("5")
    assert np.array_equal(headset.sound, tones.dtmf("5"))
    sounds.beep("warning")
    assert np.array_equal(headset.sound, tones.warning_chirp())
    sounds.beep("waiting")
    assert headset.sound.dtype == np.int16 and len(headset.sound) == 0.3 * tones.SAMPLE_RATE
    with pytest.raises(ValueError, match="unknown beep"):
        sounds.beep("fanfare")


def test_volume_sets_the_gain_of_call_sinks():
    class Sink:
        gain = 1.0

    sounds = AudioSounds(None, None, AlertsConfig())
    sink = Sink()
    sounds.sinks.append(sink)
    sounds.volume(10)
    assert sink.gain == pytest.approx(gain_of(10)) and gain_of(10) > 2.5
    sounds.volume(0)
    assert sink.gain == 0.0
    assert gain_of(7) == 1.0


def test_null_sounds_take_everything():
    sounds = NullSounds()
    sounds.ring(True)
    sounds.tone("dial")
    sounds.beep("mute")
    sounds.dtmf("#")
    sounds.volume(3)
