"""The call's media, built on voice/rtc: the one place call.py's real media comes from.

``call_audio`` is the call's audio (rtc.CallAudio: the one mute gate, the copies that last the
call, the sink the far end's audio plays to), whose ``session`` makes each media session
(ports.MediaFactory); ``with_rtc_configuration`` is what ``Call.accept(rtc_configuration)``
asks of the settings.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .rtc import CallAudio, CallAudioPort, MediaSettings, to_ice_servers

if TYPE_CHECKING:
    from .rtc.tracks import AudioSink, AudioSource


def call_audio(source: AudioSource, sink: AudioSink) -> CallAudioPort:
    """A call's audio over aiortc sessions that send ``source`` and play to ``sink``
    (ports.MediaFactory)."""
    return CallAudio(source, sink)


def with_rtc_configuration(settings: MediaSettings,
                           rtc_configuration: dict[str, Any] | None) -> MediaSettings | None:
    """The settings ``Call.accept(rtc_configuration)`` asks for: other ICE servers
    (``ice_servers`` or ``iceServers``), or None when it names none."""
    if not rtc_configuration:
        return None
    servers = rtc_configuration.get("ice_servers", rtc_configuration.get("iceServers"))
    return None if servers is None else replace(
        settings, ice_servers=to_ice_servers(list(servers)))
