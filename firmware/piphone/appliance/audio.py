"""The appliance's audio from ``[audio]``: the headset (audio/headset.py: capture, earpiece,
ring device, unplug and replug), the handsfree device, the call's source and sink factories,
and the phone's sounds.

A headset named by card (``USB``, ``auto``) that is missing at start does not stop the phone:
it runs without sound (ringer and call audio), says so in the log, and the headset is picked
up when a matching card is plugged in (audio/headset.py waits for it), with no restart.
A headset pulled mid-call is the call's ``audio-device-lost`` warning until it is back.

Handsfree (``[audio] handsfree_device``): a second speaker and microphone, opened like the
headset. ``use(handsfree)`` (the phone's AudioRoute port) moves the calls' sources and sinks,
and the phone's tones and beeps, from one device to the other without a gap in the call.
Each device has its capture stage (audio/processing.py, switched by ``[audio]``
``echo_cancellation``, ``noise_suppression``, ``auto_gain``: by default on for the handsfree
device, off for the headset): it processes its microphone on the capture thread, with its own
playback as the echo reference. ``echo_figures()`` is what the stage of the device in use saw
in its last second (call quality's echo figures; None without an echo canceller).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..audio.alsa import Playback
from ..audio.devices import AudioDeviceError, HeadsetSpec
from ..audio.headset import Headset
from ..audio.pcm_io import CaptureSource, PlaybackSink
from ..audio.processing import CaptureStage, EchoFigures, ProcessingUnavailable, make_stage
from ..pcm import Samples, apply_gain
from .config import AlertsConfig, AudioConfig
from .ports import Sounds
from .sounds import AudioSounds, NullSounds

log = logging.getLogger(__name__)

RECENT = 4  # calls' sources and sinks kept to move (the call and one waiting, with room)
# The echo reference paired a capture period earlier than the playback device alone needs: a
# capture thread that wakes a period early or late (a loaded Pi, the test rig) then never
# finds its reference unplayed, and AEC3's delay estimator takes up the 20 ms.
REFERENCE_EARLY_MS = 20


class ApplianceAudio:
    """``source``/``sink`` for the Device (None: no headset), ``sounds`` for the Phone,
    ``use(handsfree)`` and ``handsfree_available`` for the phone's speaker button."""

    def __init__(self, audio: AudioConfig, alerts: AlertsConfig,
                 on_lost: Callable[[bool], None]) -> None:
        self.headset: Headset | None = None
        self.handsfree: Headset | None = None
        self.ringer: Playback | None = None  # a ring device without a headset
        self.sounds: Sounds = NullSounds()
        self.source: Callable[[], CaptureSource] | None = None
        self.sink: Callable[[], PlaybackSink] | None = None
        self.stages: dict[str, CaptureStage] = {}  # "headset" / "handsfree" -> its stage
        self.handsfree_on = False
        self._sources: list[CaptureSource] = []
        self._sinks: list[PlaybackSink] = []
        self._on_lost = on_lost
        self._audio_sounds: AudioSounds | None = None
        headset = self._headset(audio)
        if headset is None:
            if audio.ring_device:
                self.ringer = Playback(audio.ring_device)
                self.ringer.start(tolerate_missing=True)
                self.sounds = AudioSounds(None, self.ringer, alerts)
            return
        self.headset = headset
        headset.open(tolerate_missing=True)
        headset.on("lost", lambda _reason: self._condition())
        headset.on("back", self._condition)
        self._attach_stage("headset", headset, audio)
        if audio.handsfree_device:
            self.handsfree = self._handsfree(audio.handsfree_device, audio)
        sounds = AudioSounds(headset.playback, headset.ring, alerts)
        self.sounds = sounds
        self._audio_sounds = sounds
        self.source, self.sink = self._make_source, self._make_sink

    @property
    def present(self) -> bool:
        """The device in use works (True when there is none to miss)."""
        device = self._device()
        return device is None or device.present

    @property
    def handsfree_available(self) -> bool:
        return self.handsfree is not None

    def use(self, handsfree: bool) -> None:
        """Move the calls' audio (and the phone's tones) to the handsfree device or back to
        the headset; a no-op without a handsfree device."""
        if handsfree == self.handsfree_on or (handsfree and self.handsfree is None):
            return
        self.handsfree_on = handsfree
        device = self._device()
        assert device is not None
        log.info("audio on the %s", "handsfree device" if handsfree else "headset")
        for source in self._sources:
            source.switch(device.capture)
        for sink in self._sinks:
            sink.switch(device.playback)
        sounds = self._audio_sounds
        if sounds is not None:  # the phone's tones follow (it plays the current one again)
            if sounds.headset is not None:
                sounds.headset.stop_sound()
            sounds.headset = device.playback
        self._condition()

    def play_message(self, samples: Samples | None) -> None:
        """A voicemail message in the earpiece (voicemail.py) at the call volume; None: stop."""
        sounds = self._audio_sounds
        if sounds is None or sounds.headset is None:
            return
        if samples is None:
            sounds.headset.stop_sound()
        else:
            sounds.headset.play_clip(apply_gain(samples, sounds.gain))

    def echo_figures(self) -> EchoFigures | None:
        """The last second the echo canceller of the device in use saw; None: it has none."""
        stage = self.stages.get("handsfree" if self.handsfree_on else "headset")
        if stage is None or stage.reference is None:
            return None
        return stage.figures

    def _condition(self) -> None:
        """Tell whether the device in use works (the call's audio-device-lost)."""
        self._on_lost(not self.present)

    def _device(self) -> Headset | None:
        return self.handsfree if self.handsfree_on else self.headset

    def _make_source(self) -> CaptureSource:
        device = self._device()
        assert device is not None
        made = device.source()
        self._sources[:] = [*self._sources[-(RECENT - 1):], made]
        return made

    def _make_sink(self) -> PlaybackSink:
        device = self._device()
        assert device is not None
        made = device.sink()
        self._sinks[:] = [*self._sinks[-(RECENT - 1):], made]
        if self._audio_sounds is not None:  # the volume keys reach recent calls
            made.gain = self._audio_sounds.gain
            self._audio_sounds.sinks[:] = self._sinks
        return made

    def _attach_stage(self, name: str, device: Headset, audio: AudioConfig) -> None:
        settings = audio.processing(handsfree=name == "handsfree")
        playback = device.playback
        try:
            stage = make_stage(settings, playback_periods=playback.periods,
                               playback_period_ms=playback.period_ms,
                               early_ms=REFERENCE_EARLY_MS)
        except ProcessingUnavailable as exc:
            log.warning("no audio processing on the %s: %s", name, exc)
            return
        if stage is None:
            return
        self.stages[name] = stage
        if stage.reference is not None:
            playback.tap = stage.reference.played
        device.capture.stage = stage

    def _handsfree(self, spec: str, audio: AudioConfig) -> Headset | None:
        try:
            device = Headset.from_spec(spec, wait=True)
        except AudioDeviceError as exc:  # not expected with wait=True; never fatal
            log.warning("no handsfree device (%s)", exc)
            return None
        if not device.present:
            log.warning("no handsfree device yet: waiting for one matching %r", device.card)
        device.open(tolerate_missing=True)
        device.on("lost", lambda _reason: self._condition() if self.handsfree_on else None)
        device.on("back", lambda: self._condition() if self.handsfree_on else None)
        self._attach_stage("handsfree", device, audio)
        return device

    @staticmethod
    def _headset(audio: AudioConfig) -> Headset | None:
        spec = HeadsetSpec.parse(audio.headset)
        if spec.none:
            return None
        try:
            headset = Headset.from_spec(spec, ring=audio.ring_device, wait=True)
        except AudioDeviceError as exc:  # not expected with wait=True; never fatal
            log.warning("no headset (%s): the phone runs without sound", exc)
            return None
        if not headset.present:
            log.warning("no headset yet: the phone runs without sound until one matching %r "
                        "is plugged in", headset.card)
        return headset

    async def close(self) -> None:
        for device in (self.handsfree, self.headset):
            if device is not None:
                await device.close()
        self.headset = self.handsfree = None
        for stage in self.stages.values():
            stage.close()
        self.stages.clear()
        if self.ringer is not None:
            await asyncio.to_thread(self.ringer.close)
            self.ringer = None
