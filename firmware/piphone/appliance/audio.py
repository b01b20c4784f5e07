"""The appliance's audio from ``[audio]``: the headset (audio/headset.py: capture, earpiece,
ring device, unplug and replug), the call's source and sink factories, and the phone's sounds.

A headset named by card (``USB``, ``auto``) that is missing at start does not stop the phone:
it runs without sound (ringer and call audio), says so in the log, and the headset is picked
up when a matching card is plugged in (audio/headset.py waits for it), with no restart.
A headset pulled mid-call is the call's ``audio-device-lost`` warning until it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..audio.alsa import Playback
from ..audio.devices import AudioDeviceError, HeadsetSpec
from ..audio.headset import Headset
from ..audio.pcm_io import CaptureSource, PlaybackSink
from .config import AlertsConfig, AudioConfig
from .ports import Sounds
from .sounds import AudioSounds, NullSounds

log = logging.getLogger(__name__)


class ApplianceAudio:
    """``source``/``sink`` for the Device (None: no headset), ``sounds`` for the Phone."""

    def __init__(self, audio: AudioConfig, alerts: AlertsConfig,
                 on_lost: Callable[[bool], None]) -> None:
        self.headset: Headset | None = None
        self.ringer: Playback | None = None  # a ring device without a headset
        self.sounds: Sounds = NullSounds()
        self.source: Callable[[], CaptureSource] | None = None
        self.sink: Callable[[], PlaybackSink] | None = None
        self._on_lost = on_lost
        headset = self._headset(audio)
        if headset is None:
            if audio.ring_device:
                self.ringer = Playback(audio.ring_device)
                self.ringer.start(tolerate_missing=True)
                self.sounds = AudioSounds(None, self.ringer, alerts)
            return
        self.headset = headset
        headset.open(tolerate_missing=True)
        headset.on("lost", lambda _reason: on_lost(True))
        headset.on("back", lambda: on_lost(False))
        sounds = AudioSounds(headset.playback, headset.ring, alerts)
        self.sounds = sounds

        def sink() -> PlaybackSink:
            made = headset.sink()
            made.gain = sounds.gain
            sounds.sinks[:] = [*sounds.sinks[-3:], made]  # the volume keys reach recent calls
            return made

        self.source, self.sink = headset.source, sink

    @property
    def present(self) -> bool:
        """The headset works (True when there is none to miss)."""
        return self.headset is None or self.headset.present

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
        if self.headset is not None:
            await self.headset.close()
            self.headset = None
        if self.ringer is not None:
            await asyncio.to_thread(self.ringer.close)
            self.ringer = None
