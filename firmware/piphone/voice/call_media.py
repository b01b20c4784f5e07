"""The call's media sessions, built on voice.media (aiortc): the one place call.py's media
comes from. It moves into voice/rtc with media.py (issue 15's rtc-door); what it adds to
today's MediaSession (``ice_completed``, ``packets_received``) is what the call's port
(ports.MediaSession) asks of that session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from aiortc.mediastreams import MediaStreamTrack

from .media import MediaSession, MediaSettings, to_ice_servers


class BorrowedTrack(MediaStreamTrack):
    """The call's source as one media session sees it: aiortc stops a sender's track when
    the peer connection closes, and a call outlives its first peer connection."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source

    async def recv(self) -> Any:
        return await self.source.recv()


class CallMedia(MediaSession):
    """A media session as a call uses it (ports.MediaSession)."""

    @property
    def ice_completed(self) -> bool:
        return bool(self.pc.iceConnectionState == "completed")

    @property
    def packets_received(self) -> int:
        return int(self.jitter_buffer.received)


def new_session(settings: MediaSettings, source: MediaStreamTrack, *,
                on_state: Callable[[str], None], on_remote_track: Callable[[Any], None],
                on_audio: Callable[[Any], None]) -> CallMedia:
    """A session that sends ``source`` (ports.MediaFactory)."""
    return CallMedia(settings, BorrowedTrack(source), on_state=on_state,
                     on_remote_track=on_remote_track, on_audio=on_audio)


def with_rtc_configuration(settings: MediaSettings,
                           rtc_configuration: dict[str, Any] | None) -> MediaSettings | None:
    """The settings ``Call.accept(rtc_configuration)`` asks for: other ICE servers
    (``ice_servers`` or ``iceServers``), or None when it names none."""
    if not rtc_configuration:
        return None
    servers = rtc_configuration.get("ice_servers", rtc_configuration.get("iceServers"))
    return None if servers is None else replace(
        settings, ice_servers=to_ice_servers(list(servers)))
