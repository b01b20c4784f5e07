"""The one door to aiortc, aioice and PyAV: nothing else in piphone imports them.

Everything media-related that needs them lives here: the media session (one peer connection),
the hooks into aiortc/aioice internals, the far end's SDP check, the receive jitter buffer, the
voice encoder and the audio tracks.
"""

from .ports import Counters, MediaPort
from .session import (
    MediaError,
    MediaSession,
    MediaSettings,
    NoIceCandidate,
    codec_of,
    codecs_of,
    is_loopback,
    to_ice_servers,
)

__all__ = [
    "Counters",
    "MediaPort",
    "MediaError",
    "MediaSession",
    "MediaSettings",
    "NoIceCandidate",
    "codec_of",
    "codecs_of",
    "is_loopback",
    "to_ice_servers",
]
