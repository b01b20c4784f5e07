"""The one door to aiortc, aioice and PyAV: nothing else in piphone imports them.

Everything media-related that needs them lives here: the media session (one peer connection,
session.py), the hooks into aiortc/aioice internals (hooks.py), the far end's SDP check
(remote_sdp.py), SRTP handled as it arrives (arrival.py), the receive jitter buffer
(jitter.py), the voice encoder (encoding.py) and decoder (decoding.py), PyAV frames <-> PCM
(frames.py), the adapters between PCM sources/sinks and aiortc tracks (tracks.py), a call's
audio across its sessions (call_audio.py), the bridging of the exchange's sessions
(forwarding.py, and relay.py: forwarding at the SRTP level), their mixing for a conference
(mixing.py) and a sound played into one of them (playing.py). The rest of piphone works
through the port (ports.py): MediaPort (a session, as a call and its reconnection drive it),
LegMediaPort (a session at the exchange) and CallAudioPort (a call's audio), with their value
types.
"""

from . import dscp
from .call_audio import CallAudio
from .forwarding import Outbox
from .mixing import Mixer
from .playing import Player
from .ports import CallAudioPort, Counters, LegMediaPort, MediaPort, NetworkReport
from .remote_sdp import codec_of, codecs_of
from .session import MediaError, MediaSession, NoIceCandidate
from .settings import IceServer, IceServerLike, MediaSettings, is_loopback, to_ice_servers

__all__ = [
    "CallAudio",
    "CallAudioPort",
    "Counters",
    "IceServer",
    "IceServerLike",
    "LegMediaPort",
    "MediaPort",
    "MediaError",
    "MediaSession",
    "MediaSettings",
    "Mixer",
    "NetworkReport",
    "NoIceCandidate",
    "Outbox",
    "Player",
    "codec_of",
    "dscp",
    "codecs_of",
    "is_loopback",
    "to_ice_servers",
]
