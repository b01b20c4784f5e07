"""The media port: what the rest of piphone may know of a media session, and its value types.

A call (call.py), its reconnection (reconnect.py), its quality monitor (quality.py) and the
exchange's bridge drive media only through these Protocols. ``rtc.MediaSession`` implements
them on aiortc; a test's fake implements them with no network. Nothing here is an aiortc
object: what crosses the port is text (SDP), numbers, piphone's own meters and callbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ...pcm import LevelReading, PcmTarget

if TYPE_CHECKING:
    from .forwarding import Outbox
    from .settings import MediaSettings
    from .tracks import AudioStream


@dataclass(frozen=True)
class Counters:
    """Cumulative figures of one media session, as one statistics read gives them."""

    bytes_sent: int = 0
    bytes_received: int = 0
    packets_sent: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    jitter: float | None = None  # ms, of what we receive
    rtt: float | None = None  # ms, None until RTCP told
    codec_name: str = ""
    far_received: int | None = None  # highest sequence number the far end reports received
    buffer_depth: int | None = None
    buffer_target: int | None = None
    concealed: int = 0
    late: int = 0


@dataclass(frozen=True)
class NetworkReport:
    """What a session tells of its network path (rtc/network.py), in the SDK's preflight
    report's shapes: timestamps in ms since the epoch, the browser's candidate stats keys."""

    # "peerConnection", "ice", "dtls", "signaling" -> {"start", "end", "duration"} (ms)
    timing: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    ice_candidate_stats: tuple[Mapping[str, Any], ...] = ()  # local, then remote candidates
    selected_pair: Mapping[str, Mapping[str, Any]] | None = None  # localCandidate, remote...


class MediaPort(Protocol):
    """One media session: one peer connection carrying one audio stream each way.

    Offerer: ``offer`` then ``apply_answer``. Answerer: ``check_offer`` (or
    ``prepare_answer``, which also gathers ICE while a call rings) then ``answer``. Either way
    ``wait_connected`` returns once ICE and DTLS are up (MediaError otherwise), and the
    ``on_state`` callback given when the session was made hears every connection state
    (``connected``; ``failed`` is media lost). A media restart is a new session.
    """

    @property
    def codec(self) -> str | None:
        """The negotiated codec ("opus" or "pcmu"), None before the answer; never raises."""

    @property
    def state(self) -> str:
        """The connection state: new, connecting, connected, failed or closed."""

    @property
    def local_sdp(self) -> str:
        """Our own SDP as applied (offer or answer), "" before there is one; never raises."""

    @property
    def remote_sdp(self) -> str:
        """The far end's SDP as it sent it (the last one taken), "" before one; never raises."""

    @property
    def ice_completed(self) -> bool:
        """ICE checks are through (DTLS may still be on its way)."""

    @property
    def packets_received(self) -> int:
        """RTP packets received so far: what the RTP watchdog polls (cheap, no statistics)."""

    @property
    def input_meter(self) -> LevelReading | None:
        """Levels of what we send, before encoding (None unless ``meter_levels`` was called)."""

    @property
    def output_meter(self) -> LevelReading | None:
        """Levels of what we hear, after decoding (None unless ``meter_levels`` was called)."""

    async def offer(self) -> str: ...

    async def apply_answer(self, sdp: str) -> None: ...

    async def check_offer(self, offer_sdp: str) -> None: ...

    async def prepare_answer(self, offer_sdp: str) -> None: ...

    async def answer(self) -> str: ...

    async def wait_connected(self, timeout: float | None = None) -> None: ...

    def meter_levels(self, on_tick: Callable[[], None] | None = None,
                     tick_every: float = 0.05) -> None:
        """Meter what we send and hear; ``on_tick`` every ``tick_every`` s of audio sent."""

    async def counters(self) -> Counters:
        """The session's statistics now (the quality monitor reads them once a second)."""

    def network(self) -> NetworkReport:
        """When ICE, DTLS and the connection came up, and the ICE candidates (preflight)."""

    async def close(self) -> None:
        """Close the session and all it opened (idempotent)."""


class CallAudioPort(Protocol):
    """A call's audio across its media sessions (rtc.CallAudio): the one mute, the sessions
    that send its source and play to its sink, and the copies that last the call."""

    muted: bool  # what every session sends is silence while set
    held: bool  # on hold: every session sends hold music, and what it hears is not played

    def session(self, settings: MediaSettings, *,
                on_state: Callable[[str], None] | None = None) -> MediaPort:
        """A new media session of the call (the first, or a reconnection's)."""

    def local_stream(self) -> AudioStream:
        """What the call sends (Call.get_local_stream)."""

    def remote_stream(self) -> AudioStream | None:
        """What the call hears once it came (Call.get_remote_stream), else None."""

    def end(self) -> None:
        """The call closed: stop the source and end the copies (idempotent)."""


class LegMediaPort(MediaPort, Protocol):
    """A media session at the exchange (exchange/bridge.py's Leg): one that can be bridged to
    another session's ``Outbox`` (what that session sends)."""

    @property
    def settings(self) -> MediaSettings:
        """What the session was made with (a media restart makes the next one alike)."""

    def forward_to(self, outbox: Outbox) -> None:
        """Hand each encoded frame received to ``outbox`` undecoded (same codec both sides)."""

    def decode_to(self, outbox: PcmTarget | None) -> None:
        """Decode what is received into ``outbox``, 48 kHz mono (None: drain and discard)."""
