"""What a media session is made with: its settings and the ICE servers in them.

Plain values, the port's (ports.py): the rest of piphone builds them; only session.py turns
them into aiortc's configuration.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

CODEC_MIME = {"opus": "audio/opus", "pcmu": "audio/PCMU"}
CODECS = tuple(CODEC_MIME)  # what piphone's media speaks, in its order of preference
CONNECT_TIMEOUT = 10.0  # seconds from answer to ICE+DTLS connected
BITRATE_MIN, BITRATE_MAX = 6_000, 510_000  # Opus's maxaveragebitrate range (RFC 7587)
DSCP_EF = 0xB8  # IP_TOS of DSCP Expedited Forwarding (46 << 2): what the SDK marks RTP with
MAX_REMOTE_CANDIDATES = 24  # a real offer carries fewer than ten (host, srflx, relay per path)


def codec_list_problem(value: Sequence[object]) -> str | None:
    """What is wrong with a config's ``codec_preferences``, or None (a tomlconfig check)."""
    if value and all(codec in CODECS for codec in value):
        return None
    return f"must list some of {', '.join(CODECS)}"


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server, as WebRTC's RTCIceServer (TURN needs username and credential).
    The credential is a secret: it is left out of the repr."""

    urls: str | tuple[str, ...]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)


class IceServerLike(Protocol):
    """What names an ICE server: an IceServer, or aiortc's RTCIceServer."""

    @property
    def urls(self) -> str | Sequence[str]: ...

    @property
    def username(self) -> str | None: ...

    @property
    def credential(self) -> str | None: ...


def to_ice_servers(servers: Iterable[IceServerLike | Mapping[str, Any]]
                   ) -> tuple[IceServer, ...]:
    """IceServers from IceServers, config dicts ``{urls, username?, credential?}`` (the SDK's
    rtcConfiguration), or objects with those attributes (aiortc's RTCIceServer, which
    ``Device(ice_servers=...)`` has always taken)."""
    return tuple(_ice_server(s) for s in servers)


def _ice_server(server: IceServerLike | Mapping[str, Any]) -> IceServer:
    if isinstance(server, IceServer):
        return server
    if isinstance(server, Mapping):
        urls, username, credential = (server["urls"], server.get("username"),
                                      server.get("credential"))
    else:
        urls, username, credential = server.urls, server.username, server.credential
    return IceServer(urls if isinstance(urls, str) else tuple(urls), username, credential)


def is_loopback(host: str | None) -> bool:
    """True for a host name or address on this machine's loopback (127.0.0.0/8, ::1,
    localhost): a peer reached there can be offered 127.0.0.1 for media."""
    if not host:
        return False
    host = host.strip("[]")
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class MediaSettings:
    ice_servers: tuple[IceServer, ...] = ()  # empty: host candidates only
    ice_addresses: tuple[str, ...] | None = None  # None: every non-loopback address
    # With ice_addresses None, also offer 127.0.0.1: the peer is reached over loopback (an
    # exchange bound to it, a client whose signaling URL is), and aioice leaves loopback out.
    ice_loopback: bool = False
    codec_preferences: tuple[str, ...] = ("opus", "pcmu")
    connect_timeout: float = CONNECT_TIMEOUT
    opus_bitrate: int = 32_000  # bits/s of the mono voice we send (aiortc's own: 96k stereo)
    # Opus maxaveragebitrate put in our SDP (what the far end may send us, bit/s); None, or
    # outside BITRATE_MIN-MAX: none, as the SDK.
    max_average_bitrate: int | None = None
    dscp: bool = True  # mark the media sockets DSCP EF (IP_TOS 0xB8)
    # Usable ICE candidates taken from the far end's SDP (>= 1); more are dropped (logged).
    max_remote_candidates: int = MAX_REMOTE_CANDIDATES

    def __post_init__(self) -> None:
        unknown = [c for c in self.codec_preferences if c not in CODEC_MIME]
        if unknown or not self.codec_preferences:
            raise ValueError(
                f"codec_preferences must name some of {sorted(CODEC_MIME)}, got "
                f"{list(self.codec_preferences)}"
            )
        if self.max_remote_candidates < 1:
            raise ValueError("max_remote_candidates must be at least 1")
