"""The one door to aiortc, aioice and PyAV: nothing else in piphone imports them.

Everything media-related that needs them lives here: the media session (one peer connection,
session.py), the hooks into aiortc/aioice internals (hooks.py), the far end's SDP check
(remote_sdp.py), the receive jitter buffer (jitter.py), the voice encoder (encoding.py), PyAV
frames <-> PCM (frames.py), the adapters between PCM sources/sinks and aiortc tracks
(tracks.py) and a call's audio across its sessions (call_audio.py). The rest of piphone works
through the port (ports.py): MediaPort and CallAudioPort, and their value types.
"""

from .call_audio import CallAudio
from .ports import CallAudioPort, Counters, MediaPort
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
    "CallAudio",
    "CallAudioPort",
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
