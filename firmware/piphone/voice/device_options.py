"""A Device's options, as the SDK's ``Device.Options``: given to ``Device(token, **options)``,
changed with ``Device.update_options(**options)`` (the SDK's ``updateOptions``).

As in the SDK (device.ts ``updateOptions``), every option may change at any time but one: the
signaling URLs (``edge``, ``signaling_url``) cannot change while a call is active
(InvalidStateError "Cannot change Edge while on an active Call"); changed otherwise, the
stream reconnects to the new URL and registers again if it was registered. The rest applies
from the next call on: a call keeps the media, audio, quality and reconnection settings it
was made with. ``max_average_bitrate`` outside 6000-510000 bit/s (or 0) is not used, as the
SDK ignores it.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvalidArgumentError, InvalidStateError
from ..pcm import Silence
from . import protocol
from .call import Call, CallDirection
from .call_states import CallStatus
from .edges import edge_list, twilio_signaling_url
from .quality import QualitySettings
from .reconnect import ReconnectSettings
from .rtc import IceServerLike, MediaSettings, is_loopback, to_ice_servers
from .rtc.settings import BITRATE_MAX, BITRATE_MIN
from .rtc.tracks import AudioSink, AudioSource, DrainSink
from .samples import EchoStats
from .token_refresh import TokenSource

log = logging.getLogger(__name__)

SIGNALING = ("edge", "signaling_url")  # what a call that is up forbids to change


@dataclass(frozen=True)
class DeviceOptions:
    edge: str | Sequence[str] = "roaming"  # Twilio's edge(s), tried in order
    signaling_url: str | None = None  # instead of Twilio's edges (e.g. the local exchange)
    ssl_context: ssl.SSLContext | None = None  # of wss://; None: the system's trust store
    codec_preferences: Sequence[str] = ("opus", "pcmu")
    ice_servers: Sequence[IceServerLike | Mapping[str, Any]] = ()  # STUN/TURN
    ice_addresses: Sequence[str] | None = None  # None: every non-loopback address
    audio_source: Callable[[], AudioSource] = Silence  # one per call
    audio_sink: Callable[[], AudioSink] = DrainSink  # one per call
    token_refresh_ms: int = 10_000  # tokenWillExpire this many ms before the token expires
    token_source: TokenSource | None = None  # a fresh token before a reconnect (token_refresh)
    allow_incoming_while_busy: bool = False  # else invites are ignored during an active call
    gather_while_ringing: bool = True  # ICE gathered before accept()
    register_interval: float = protocol.REGISTER_INTERVAL  # seconds between registers
    heartbeat_timeout: float = protocol.HEARTBEAT_TIMEOUT  # seconds of silence = dead socket
    reconnect: ReconnectSettings | None = None  # call reconnection timers (None: defaults)
    quality: QualitySettings | None = None  # every call's monitor (None: defaults)
    event_gateway: str | None = None  # Insights URL; None: the server's, else Twilio's
    # Opus maxaveragebitrate (bit/s) in our SDP: what the far end may send us at most.
    max_average_bitrate: int | None = None
    dscp: bool = True  # mark our RTP as DSCP EF (46), as the SDK does by default
    app_name: str | None = None  # in every Insights event's publisher_metadata
    app_version: str | None = None
    # piphone: the microphone's echo canceller figures, for each call's samples (the appliance)
    echo_stats: Callable[[], EchoStats | None] | None = None

    def __post_init__(self) -> None:
        self.signaling_urls()  # an unknown edge is a ValueError now, not at connect
        self.media_settings()  # so are unknown codecs
        if self.reconnect is None:
            object.__setattr__(self, "reconnect", ReconnectSettings())
        if self.quality is None:
            object.__setattr__(self, "quality", QualitySettings())
        bitrate = self.max_average_bitrate
        if bitrate is not None and (isinstance(bitrate, bool) or not isinstance(bitrate, int)):
            raise InvalidArgumentError(f"max_average_bitrate must be an integer (bit/s), "
                                       f"got {bitrate!r}")
        if bitrate and not BITRATE_MIN <= bitrate <= BITRATE_MAX:
            log.warning("max_average_bitrate %d is outside %d-%d bit/s: not used (as the SDK)",
                        bitrate, BITRATE_MIN, BITRATE_MAX)

    def changed(self, changes: Mapping[str, Any]) -> DeviceOptions:
        """These options with ``changes``; InvalidArgumentError names an unknown option."""
        unknown = sorted(set(changes) - NAMES)
        if unknown:
            raise InvalidArgumentError(f"unknown Device option(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def signaling_urls(self) -> tuple[str, ...]:
        if self.signaling_url:
            return (self.signaling_url,)
        return tuple(twilio_signaling_url(e) for e in edge_list(self.edge))

    def media_settings(self) -> MediaSettings:
        """What the next call's media sessions are made with."""
        return MediaSettings(
            ice_servers=to_ice_servers(self.ice_servers),
            ice_addresses=tuple(self.ice_addresses) if self.ice_addresses is not None else None,
            ice_loopback=is_loopback(urlsplit(self.signaling_urls()[0]).hostname),
            codec_preferences=tuple(self.codec_preferences),
            max_average_bitrate=self.max_average_bitrate or None,
            dscp=self.dscp)

    @property
    def metadata(self) -> dict[str, str | None]:
        """The Insights ``publisher_metadata`` (the SDK's ``app_name``/``app_version``)."""
        return {"app_name": self.app_name, "app_version": self.app_version}


NAMES = frozenset(f.name for f in dataclasses.fields(DeviceOptions))


def check_update(old: DeviceOptions, new: DeviceOptions, busy: bool) -> bool:
    """Whether ``new`` moves the signaling stream; InvalidStateError if it would while a call
    is active (the SDK's rule)."""
    moved = (old.signaling_urls() != new.signaling_urls()
             or old.ssl_context is not new.ssl_context)
    if moved and busy:
        raise InvalidStateError("Cannot change Edge while on an active Call")
    return moved


def active_call(calls: Iterable[Call], held: bool = True) -> Call | None:
    """The SDK's ``_activeCall``: a call being placed or one that was accepted and has not
    ended. A call still ringing here (incoming, pending) is not active; nor, unless ``held``,
    one on hold (piphone's: a phone places a consultation call while the first is held)."""
    for call in calls:
        status = call.status()
        if status is CallStatus.CLOSED or not held and call.is_on_hold():
            continue
        if call.direction is CallDirection.OUTGOING or status is not CallStatus.PENDING:
            return call
    return None
