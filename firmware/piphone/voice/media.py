"""One aiortc RTCPeerConnection per media session, with piphone's choices applied.

- ICE servers come only from configuration: aiortc would otherwise contact a public STUN
  server, and piphone contacts nothing it was not told to.
- ICE host addresses can be chosen (rtc_hooks): loopback in tests, one interface on a Pi.
- Codec preference (opus, pcmu) is applied before negotiation, on both sides.
- An answerer gathers as soon as the offer is known (``prepare_answer``), so that accepting
  a ringing call costs no gathering time.
A media restart is a new MediaSession: aiortc has no ICE restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import SessionDescription

from . import rtc_hooks
from .encoding import EncodingTrack
from .meter import LevelMeter
from .tasks import first_set

log = logging.getLogger(__name__)

CODEC_MIME = {"opus": "audio/opus", "pcmu": "audio/PCMU"}
CONNECT_TIMEOUT = 10.0  # seconds from answer to ICE+DTLS connected


class MediaError(Exception):
    """The media session could not be set up."""


@dataclass(frozen=True)
class MediaSettings:
    ice_servers: tuple[RTCIceServer, ...] = ()  # empty: host candidates only
    ice_addresses: tuple[str, ...] | None = None  # None: every non-loopback address
    codec_preferences: tuple[str, ...] = ("opus", "pcmu")
    connect_timeout: float = CONNECT_TIMEOUT
    opus_bitrate: int = 32_000  # bits/s of the mono voice we send (aiortc's own: 96k stereo)

    def __post_init__(self) -> None:
        unknown = [c for c in self.codec_preferences if c not in CODEC_MIME]
        if unknown or not self.codec_preferences:
            raise ValueError(
                f"codec_preferences must name some of {sorted(CODEC_MIME)}, got "
                f"{list(self.codec_preferences)}"
            )


def codecs_of(sdp: str) -> list[str]:
    """The known codecs (opus, pcmu) an SDP lists for audio, in its order."""
    try:
        description = SessionDescription.parse(sdp)
    except Exception:  # aiortc's parser raises assorted errors on garbage
        return []
    names = [c.mimeType.split("/", 1)[1].lower() for m in description.media
             if m.kind == "audio" for c in m.rtp.codecs]
    return [n for n in dict.fromkeys(names) if n in CODEC_MIME]


def codec_of(sdp: str) -> str | None:
    """The codec an answer SDP selects (its first known audio codec): opus or pcmu."""
    return next(iter(codecs_of(sdp)), None)


@dataclass
class MediaSession:
    """A peer connection carrying one audio track each way."""

    settings: MediaSettings
    source: MediaStreamTrack
    on_state: Callable[[str], None] | None = None  # connectionState changes
    on_remote_track: Callable[[MediaStreamTrack], None] | None = None
    pc: RTCPeerConnection = field(init=False)
    _connected: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _failed: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _gathered: asyncio.Task | None = field(init=False, default=None)
    receive_tap: rtc_hooks.ReceiveTap = field(init=False)  # decodes, or forwards (exchange)

    def __post_init__(self) -> None:
        config = RTCConfiguration(iceServers=list(self.settings.ice_servers))
        self.pc = RTCPeerConnection(configuration=config)
        self.pc.on("connectionstatechange", self._state_changed)
        self.pc.on("track", self._track)
        # We encode on the loop ourselves (encoding.py); aiortc sends the packets as they are.
        # Levels of what we send and hear (``meter_levels``), and what the far end says it
        # received: for the call's quality monitor (quality.py).
        self.input_meter: LevelMeter | None = None
        self.output_meter: LevelMeter | None = None
        self.far_received: int | None = None
        self._sending = EncodingTrack(self.source, lambda: self.codec,
                                      opus_bitrate=self.settings.opus_bitrate)
        transceiver = self.pc.addTransceiver(self._sending, direction="sendrecv")
        self.receive_tap = rtc_hooks.decode_on_loop(transceiver.receiver)
        rtc_hooks.watch_receiver_reports(transceiver.sender, self._receiver_report)
        self.jitter_buffer = rtc_hooks.use_jitter_buffer(transceiver.receiver)  # jitter.py
        transceiver.setCodecPreferences(self._capabilities(self.settings.codec_preferences))
        self._transceiver = transceiver

    @staticmethod
    def _capabilities(names: Sequence[str]) -> list:
        capabilities = RTCRtpSender.getCapabilities("audio").codecs
        return [c for name in names for c in capabilities
                if c.mimeType.lower() == CODEC_MIME[name].lower()]

    # --- offerer -------------------------------------------------------------------------
    async def offer(self) -> str:
        """Create and apply an offer (gathers ICE); return its SDP."""
        with rtc_hooks.ice_addresses(self.settings.ice_addresses):
            await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def apply_answer(self, sdp: str) -> None:
        # Send what the answerer put first (aiortc would re-sort by our own order), so that
        # ``codec`` and the packets EncodingTrack makes match what goes on the wire.
        accepted = [c for c in codecs_of(sdp) if c in self.settings.codec_preferences]
        if accepted:
            self._transceiver.setCodecPreferences(self._capabilities(accepted))
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:  # aiortc raises ValueError and friends on a bad SDP
            raise MediaError(f"bad answer SDP: {exc}") from exc

    # --- answerer ------------------------------------------------------------------------
    async def check_offer(self, offer_sdp: str) -> None:
        """MediaError unless the offer has an audio codec we take.

        aiortc takes garbage as an empty offer, and our own transceiver is always audio:
        check the offer itself, or the failure only shows in answer().
        """
        if not set(codecs_of(offer_sdp)) & set(self.settings.codec_preferences):
            raise MediaError("bad offer SDP: no audio codec in common "
                             f"(we take {', '.join(self.settings.codec_preferences)})")

    async def prepare_answer(self, offer_sdp: str) -> None:
        """Apply the remote offer and gather ICE now, before anyone accepts."""
        await self.check_offer(offer_sdp)
        # As answerer we take the offer's order among the codecs we accept (JSEP): the caller
        # chooses, so both ends of a call through the exchange end up with the same codec.
        accepted = [c for c in codecs_of(offer_sdp) if c in self.settings.codec_preferences]
        self._transceiver.setCodecPreferences(self._capabilities(accepted))
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as exc:
            raise MediaError(f"bad offer SDP: {exc}") from exc
        gatherer = self._transceiver.receiver.transport.transport.iceGatherer
        with rtc_hooks.ice_addresses(self.settings.ice_addresses):
            # RTCIceGatherer.gather() is ORTC's public API; setLocalDescription reuses its result.
            self._gathered = asyncio.ensure_future(gatherer.gather())
        await self._gathered

    async def answer(self) -> str:
        """Create and apply the answer (no gathering left to do); return its SDP."""
        if self._gathered is not None:
            await self._gathered
        with rtc_hooks.ice_addresses(self.settings.ice_addresses):
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    # --- both ----------------------------------------------------------------------------
    @property
    def codec(self) -> str | None:
        local, remote = self.pc.localDescription, self.pc.remoteDescription
        for description in (local, remote):
            if description is not None and description.type == "answer":
                return codec_of(description.sdp)
        return None

    @property
    def state(self) -> str:
        return self.pc.connectionState

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait for ICE+DTLS connected; MediaError if it fails or times out."""
        timeout = self.settings.connect_timeout if timeout is None else timeout
        await first_set((self._connected, self._failed), timeout)
        if not self._connected.is_set():
            raise MediaError(
                "media connection failed" if self._failed.is_set()
                else f"media not connected within {timeout:.0f} s"
            )

    async def close(self) -> None:
        await self.pc.close()

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        log.debug("media connection %s", state)
        if state == "connected":
            self._connected.set()
        elif state in ("failed", "closed"):
            self._failed.set()
        if self.on_state is not None:
            self.on_state(state)

    def meter_levels(self, on_sent: Callable[[], None] | None = None) -> None:
        """Meter the PCM we send (before encoding) and hear (after decoding); ``on_sent`` is
        called after each frame sent."""
        self.input_meter, self.output_meter = LevelMeter(on_sent), LevelMeter()
        self._sending.meter = self.input_meter
        self.receive_tap.meter = self.output_meter

    def _receiver_report(self, report) -> None:
        self.far_received = report.highest_sequence

    def _track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and self.on_remote_track is not None:
            self.on_remote_track(track)


def to_ice_servers(servers: Sequence[RTCIceServer | dict]) -> tuple[RTCIceServer, ...]:
    """RTCIceServer objects, from themselves or config dicts ``{urls, username?, credential?}``."""
    return tuple(
        s if isinstance(s, RTCIceServer)
        else RTCIceServer(urls=s["urls"], username=s.get("username"),
                          credential=s.get("credential"))
        for s in servers
    )
