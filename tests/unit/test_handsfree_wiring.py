"""Handsfree's wiring, without a call: ``[audio]``'s keys (defaults by device, errors naming
key and line), the speaker cue of display(), the capture stage and echo tap in alsa.py's
threads' hands, and call quality's echo figures and ``high-residual-echo`` warning."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from piphone.appliance import config
from piphone.appliance.audio_config import AudioConfig
from piphone.appliance.display import DisplayPatterns, display
from piphone.audio.alsa import Capture, Playback
from piphone.audio.processing import ProcessingSettings
from piphone.errors import ConfigError
from piphone.panel.leds import Pattern
from piphone.voice.quality import RESIDUAL_ECHO
from piphone.voice.thresholds import RESIDUAL_ECHO_DBFS

from .test_appliance_config import GOOD, write
from .test_quality import Harness


# --- [audio] ----------------------------------------------------------------------------------
def audio_of(tmp_path, body: str) -> AudioConfig:
    return config.load(write(tmp_path, GOOD.replace('headset = "none"', body))).audio


def test_processing_is_on_for_handsfree_and_off_for_the_headset_by_default(tmp_path):
    audio = audio_of(tmp_path, 'headset = "USB"\nhandsfree_device = "Speakerphone"')
    assert audio.handsfree_device == "Speakerphone"
    assert audio.processing(handsfree=True) == ProcessingSettings.handsfree()
    assert audio.processing(handsfree=False) == ProcessingSettings()
    assert not audio.processing(handsfree=False).enabled  # no stage, no cost


def test_a_processing_key_set_applies_to_both_devices(tmp_path):
    audio = audio_of(tmp_path, 'headset = "USB"\nhandsfree_device = "hw:2,0"\n'
                               "noise_suppression = true\nauto_gain = false")
    assert audio.processing(handsfree=False) == ProcessingSettings(noise_suppression=True)
    assert audio.processing(handsfree=True) == ProcessingSettings(
        echo_cancellation=True, noise_suppression=True)


@pytest.mark.parametrize("body, key, message", [
    ('handsfree_device = ""', "handsfree_device", "must not be empty"),
    ('handsfree_device = "auto"', "handsfree_device", "is not a device"),
    ('handsfree_device = "none"', "handsfree_device", "is not a device"),
    ('handsfree_device = 3', "handsfree_device", "must be"),
    ('echo_cancellation = "yes"', "echo_cancellation", "must be"),
    ('auto_gain = 1', "auto_gain", "must be"),
    ('speakerphone = "USB"', "speakerphone", "unknown"),
])
def test_bad_audio_keys_name_the_key_and_its_line(tmp_path, body, key, message):
    with pytest.raises(ConfigError) as err:
        audio_of(tmp_path, f'headset = "none"\n{body}')
    text = str(err.value)
    assert f"audio.{key}" in text and "line 9" in text and message in text, text


def test_the_handsfree_device_cannot_be_the_headset(tmp_path):
    with pytest.raises(ConfigError, match=r"line 9: audio.handsfree_device: is the headset"):
        audio_of(tmp_path, 'headset = "USB"\nhandsfree_device = "USB"')


# --- display() ------------------------------------------------------------------------------
@pytest.mark.parametrize("state", ["dialing", "ringing", "calling", "talking", "reconnecting"])
def test_the_speaker_led_shows_handsfree(state):
    shown = display(state, False, frozenset(), handsfree=True)
    assert shown.leds["speaker"] is Pattern.ON
    assert "speaker" not in display(state, False, frozenset()).leds


def test_idle_is_dark_even_with_handsfree_left_over():
    assert dict(display("idle", False, frozenset(), handsfree=True).leds) == {}


def test_the_speaker_cue_is_configurable(tmp_path):
    patterns = DisplayPatterns(speaker=Pattern.BLINK_SLOW)
    shown = display("talking", True, frozenset(), handsfree=True, patterns=patterns)
    assert shown.leds["speaker"] is Pattern.BLINK_SLOW and shown.leds["mute"] is Pattern.ON
    leds = config.load(write(tmp_path, GOOD + '\n[leds]\nspeaker = "off"\n')).leds
    assert "speaker" not in display("talking", False, frozenset(), handsfree=True,
                                    patterns=leds).leds


# --- the stage in the threads' hands --------------------------------------------------------
class FakeStage:
    def __init__(self, fail: bool = False) -> None:
        self.blocks: list[np.ndarray] = []
        self.lost = 0
        self.fail = fail

    def process(self, block: np.ndarray) -> np.ndarray:
        if self.fail:
            raise RuntimeError("broken backend")
        self.blocks.append(block)
        return -block

    def lost_audio(self) -> None:
        self.lost += 1


def capture_with(stage) -> tuple[Capture, list]:
    capture = Capture("null")
    delivered: list = []
    capture._call = lambda deliver, block: deliver(block)  # the loop, inline
    capture.stage = stage
    return capture, delivered


def test_the_stage_processes_each_block_while_someone_listens():
    stage = FakeStage()
    capture, delivered = capture_with(stage)
    capture._collect(np.ones(960, np.int16))
    assert stage.blocks == []  # nobody listens: no work
    capture._subscribers.append(delivered.append)
    capture._collect(np.full(1440, 5, np.int16))
    assert len(stage.blocks) == 1 and (delivered[0] == -5).all()
    capture._xrun()
    assert stage.lost == 1  # the echo pairing is made again


def test_a_failing_stage_is_turned_off_and_the_audio_goes_on(caplog):
    capture, delivered = capture_with(FakeStage(fail=True))
    capture._subscribers.append(delivered.append)
    capture._collect(np.full(960, 7, np.int16))
    assert capture.stage is None and (delivered[0] == 7).all()
    assert "audio processing on null failed" in caplog.text


def test_the_tap_gets_each_block_as_written_mono_at_the_device_rate():
    playback = Playback("null")
    written: list[bytes] = []
    playback._pcm = SimpleNamespace(write=lambda data: written.append(data) or 240)
    playback.rate, playback.channels, playback.period = 44_100, 2, 220
    tapped: list = []
    playback.tap = lambda block, rate: tapped.append((block.copy(), rate))
    playback._buffer.append(np.full(220, 100, np.int16))
    playback._io()
    block, rate = tapped[0]
    assert rate == 44_100 and len(block) == 220  # mono, before the channels are doubled
    assert len(written[0]) == 220 * 2 * 2
    assert np.frombuffer(written[0], np.int16)[::2].tolist() == block.tolist()


# --- call quality ---------------------------------------------------------------------------
class Figures:
    def __init__(self, erle: float | None, residual: float | None) -> None:
        self.echo_return_loss_enhancement = erle
        self.residual_echo_level = residual


def harness_with(figures: list) -> Harness:
    harness = Harness()
    harness.monitor._echo = lambda: figures[0]
    return harness


def test_samples_carry_the_stages_figures_as_piphone_extensions():
    figures = [Figures(31.5, -70.0)]
    sample = harness_with(figures).second()
    data = sample.to_dict()
    assert data["echoReturnLossEnhancement"] == 31.5 and data["residualEchoLevel"] == -70.0
    assert Harness().second().to_dict()["residualEchoLevel"] is None  # no canceller


def test_echo_heard_despite_the_stage_warns_and_leaving_the_stage_clears_it():
    figures = [Figures(3.0, RESIDUAL_ECHO_DBFS + 10)]
    harness = harness_with(figures)
    for _ in range(4):  # warnings are off for the first 5 s
        harness.second()
    assert RESIDUAL_ECHO == "high-residual-echo"
    assert [e for e in harness.events if e[0] == "warning"] == []
    for _ in range(5):
        harness.second()
    warned = [e for e in harness.events if e[0] == "warning"]
    assert warned and warned[0][1] == RESIDUAL_ECHO
    assert warned[0][2]["threshold"] == {"name": "max", "value": RESIDUAL_ECHO_DBFS}
    figures[0] = None  # the call moved to the headset: no canceller
    harness.second()
    assert ("warning-cleared", RESIDUAL_ECHO) in harness.events


def test_a_quiet_residual_or_a_silent_far_end_does_not_warn():
    figures = [Figures(35.0, RESIDUAL_ECHO_DBFS - 20)]
    harness = harness_with(figures)
    for second in range(12):
        if second % 3 == 0:
            figures[0] = Figures(None, None)  # the far end said nothing that second
        else:
            figures[0] = Figures(35.0, RESIDUAL_ECHO_DBFS - 20)
        harness.second()
    assert not [e for e in harness.events if e[0] == "warning"]
