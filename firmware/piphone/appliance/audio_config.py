"""``[audio]`` of piphone.toml: the headset, the ringer and the handsfree device, and the
capture path's processing (echo cancellation, noise suppression, gain control).

Each processing switch left out follows the device a call is on: on for the handsfree device
(a speaker the microphone hears), off for a headset (no echo to cancel: it would cost CPU for
nothing); set, it applies to both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..audio.devices import HeadsetSpec
from ..tomlconfig import TomlFile

if TYPE_CHECKING:
    from ..audio.processing import ProcessingSettings

PROCESSING_KEYS = ("echo_cancellation", "noise_suppression", "auto_gain")


@dataclass(frozen=True)
class AudioConfig:
    headset: str = "auto"  # card name (e.g. "USB"), ALSA device, "CAP,PLAY", "auto" or "none"
    ring_device: str | None = None  # ALSA device of the ringer; None = the headset
    handsfree_device: str | None = None  # speaker + microphone: card name, device, "CAP,PLAY"
    # None: on for the handsfree device, off for the headset; True/False: both
    echo_cancellation: bool | None = None  # cancel what the speaker played (AEC3)
    noise_suppression: bool | None = None  # steady background noise, about 18 dB
    auto_gain: bool | None = None  # adaptive digital gain with a limiter (AGC2)

    def processing(self, *, handsfree: bool) -> ProcessingSettings:
        """The capture path's switches on the handsfree device or on the headset."""
        from ..audio.processing import ProcessingSettings

        def chosen(value: bool | None) -> bool:
            return handsfree if value is None else value

        return ProcessingSettings(echo_cancellation=chosen(self.echo_cancellation),
                                  noise_suppression=chosen(self.noise_suppression),
                                  auto_gain=chosen(self.auto_gain))


def load_audio(toml: TomlFile) -> AudioConfig:
    """[audio], checked: errors name the file, the key and its line."""
    sec = "audio"
    toml.unknown_keys(sec, {"headset", "ring_device", "handsfree_device", *PROCESSING_KEYS})
    headset = toml.get(sec, "headset", str, "auto", _nonempty)
    handsfree = toml.get(sec, "handsfree_device", str, None, _handsfree)
    if handsfree is not None and handsfree == headset:
        raise toml.error(sec, "handsfree_device", "is the headset: name a speaker and "
                         "microphone of their own")
    switches = {key: toml.get(sec, key, bool, None) for key in PROCESSING_KEYS}
    return AudioConfig(headset=headset,
                       ring_device=toml.get(sec, "ring_device", str, None, _nonempty),
                       handsfree_device=handsfree, **switches)


def _nonempty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _handsfree(value: str) -> str | None:
    if not value.strip():
        return "must not be empty"
    if value in ("none", "auto"):
        return (f"{value!r} is not a device: a card name (e.g. \"Speakerphone\"), an ALSA "
                "device or \"CAPTURE,PLAYBACK\" (leave the key out for no handsfree device)")
    spec = HeadsetSpec.parse(value)
    if spec.card is None and not (spec.capture and spec.playback):
        return "needs a capture and a playback device"
    return None
