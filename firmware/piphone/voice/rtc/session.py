"""One aiortc RTCPeerConnection per media session, with piphone's choices applied.

- ICE servers come only from configuration: aiortc would otherwise contact a public STUN
  server, and piphone contacts nothing it was not told to.
- ICE host addresses can be chosen (hooks.py): loopback in tests, one interface on a Pi.
- Codec preference (opus, pcmu) is applied before negotiation, on both sides.
- Our offers and answers carry ``max_average_bitrate`` as the SDK's do (opus_fmtp.py), and
  the far end's caps what we encode; the sockets are marked DSCP EF (dscp.py) once gathered.
- An answerer gathers as soon as the offer is known (``prepare_answer``), so that accepting
  a ringing call costs no gathering time.
- This is the boundary to aiortc: the far end's SDP is checked here first (remote_sdp.py),
  whatever aiortc raises comes out as MediaError, and a gathering that finds no candidate
  says so. ``close`` waits for an aiortc operation in progress before closing under it.
A media restart is a new MediaSession: aiortc has no ICE restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import av
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtcpReceiverInfo
from aiortc.stats import (
    RTCInboundRtpStreamStats,
    RTCOutboundRtpStreamStats,
    RTCRemoteInboundRtpStreamStats,
)

from ...pcm import LevelMeter, PcmTarget
from ..tasks import TaskSet, first_set
from . import arrival, dscp, forwarding, hooks, opus_fmtp, remote_sdp, sending
from .encoding import EncodingTrack
from .forwarding import Outbox
from .frames import AvFrames
from .jitter import CLOCK_RATE
from .network import NetworkWatch
from .ports import Counters, NetworkReport
from .relay import RelayIn, RelayOut
from .remote_sdp import codec_of, codecs_of
from .settings import CODEC_MIME, IceServer, MediaSettings
from .tracks import AudioSink, AudioSource, as_track, play, writer_for

log = logging.getLogger(__name__)
T = TypeVar("T")

CLOSE_WAIT = 10.0  # seconds close() waits for an aiortc operation in progress, then cancels it


class MediaError(Exception):
    """The media session could not be set up: the one error of this boundary, whatever aiortc
    raised underneath (``__cause__``)."""


class NoIceCandidate(MediaError):
    """Gathering found no candidate: ICE cannot work (the message says why)."""


@dataclass(repr=False)
class MediaSession:
    """A peer connection carrying one audio track each way."""

    settings: MediaSettings
    source: AudioSource  # a PCM source or an aiortc track (tracks.as_track)
    sink: AudioSink | None = None  # plays the far end's audio (the session owns the task)
    on_state: Callable[[str], None] | None = None  # connectionState changes
    on_remote_track: Callable[[MediaStreamTrack], None] | None = None
    on_audio: Callable[[av.AudioFrame], None] | None = None  # every decoded frame received
    pc: RTCPeerConnection = field(init=False)
    _connected: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _failed: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _gathered: asyncio.Task[None] | None = field(init=False, default=None)
    # aiortc calls under way
    _steps: set[asyncio.Task[Any]] = field(init=False, default_factory=set)
    _closing: bool = field(init=False, default=False)
    _checked: tuple[str, str] | None = field(init=False, default=None)  # remote SDP, as checked
    _codec: str | None = field(init=False, default=None)
    receive_tap: hooks.ReceiveTap = field(init=False)  # decodes, or forwards (exchange)

    def __post_init__(self) -> None:
        config = RTCConfiguration(iceServers=[_rtc_ice_server(s)
                                              for s in self.settings.ice_servers])
        self.pc = RTCPeerConnection(configuration=config)
        self.pc.on("connectionstatechange", self._state_changed)
        self.pc.on("track", self._track)
        # We encode on the loop ourselves (encoding.py); aiortc sends the packets as they are.
        # Levels of what we send and hear (``meter_levels``), and what the far end says it
        # received: for the call's quality monitor (quality.py).
        self.input_meter: LevelMeter[av.AudioFrame] | None = None
        self.output_meter: LevelMeter[av.AudioFrame] | None = None
        self.far_received: int | None = None
        self._playing = TaskSet(self)  # what plays or decodes the far end's audio
        self._pump: asyncio.Task[None] | None = None  # decode_to's
        self._remote: MediaStreamTrack | None = None  # the far end's audio, once it came
        self._remote_arrived = asyncio.Event()
        self._sending = EncodingTrack(as_track(self.source), lambda: self.codec,
                                      opus_bitrate=self.settings.opus_bitrate)
        transceiver = self.pc.addTransceiver(self._sending, direction="sendrecv")
        if not isinstance(self.source, Outbox):  # the exchange's legs keep aiortc's loop
            sending.lean_sender(transceiver.sender)  # our packets, without aiortc's objects
        self.receive_tap = hooks.decode_on_loop(transceiver.receiver)
        arrival.handle_on_arrival(transceiver.receiver.transport)  # SRTP handled at once
        self.receive_tap.listener = self.on_audio
        hooks.watch_receiver_reports(transceiver.sender, self._receiver_report)
        self.jitter_buffer = hooks.use_jitter_buffer(transceiver.receiver)  # jitter.py
        transceiver.setCodecPreferences(self._capabilities(self.settings.codec_preferences))
        self._transceiver = transceiver
        self._network = NetworkWatch(self.pc, transceiver.sender.transport)  # preflight's
        # The exchange's legs forward at the SRTP level (relay.py): what this session sends
        # when its Outbox forwards, and (made by forward_to) what takes what it receives.
        self._relay_in: RelayIn | None = None
        self._relay_out: RelayOut | None = None
        if isinstance(self.source, Outbox):
            self._relay_out = self.source.relay = RelayOut(
                transceiver, self._ice_connection(), lambda: self.codec, self._playing.spawn)

    @staticmethod
    def _capabilities(names: Sequence[str]) -> list[RTCRtpCodecCapability]:
        capabilities = RTCRtpSender.getCapabilities("audio").codecs
        return [c for name in names for c in capabilities
                if c.mimeType.lower() == CODEC_MIME[name].lower()]

    # --- offerer -------------------------------------------------------------------------
    async def offer(self) -> str:
        """Create and apply an offer (gathers ICE); return its SDP."""
        with self._addresses():
            await self._step("cannot create the offer", self._apply_local(self.pc.createOffer))
        self._require_candidates()
        return self.pc.localDescription.sdp

    async def apply_answer(self, sdp: str) -> None:
        sdp = self._checked_remote(sdp, "answer")
        # Send what the answerer put first (aiortc would re-sort by our own order), so that
        # ``codec`` and the packets EncodingTrack makes match what goes on the wire.
        accepted = [c for c in codecs_of(sdp) if c in self.settings.codec_preferences]
        if accepted:
            self._transceiver.setCodecPreferences(self._capabilities(accepted))
        await self._step("bad answer SDP", self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=sdp, type="answer")))
        self._codec = codec_of(sdp)
        self._cap_bitrate(sdp)

    # --- answerer ------------------------------------------------------------------------
    async def check_offer(self, offer_sdp: str) -> None:
        """MediaError unless the offer is one we can answer (remote_sdp.check) with an audio
        codec we take.

        aiortc takes garbage as an empty offer, and our own transceiver is always audio:
        check the offer itself, or the failure only shows in answer().
        """
        offer_sdp = self._checked_remote(offer_sdp, "offer")
        if not set(codecs_of(offer_sdp)) & set(self.settings.codec_preferences):
            raise MediaError("bad offer SDP: no audio codec in common "
                             f"(we take {', '.join(self.settings.codec_preferences)})")

    async def prepare_answer(self, offer_sdp: str) -> None:
        """Apply the remote offer and gather ICE now, before anyone accepts."""
        await self.check_offer(offer_sdp)
        offer_sdp = self._checked_remote(offer_sdp, "offer")
        # As answerer we take the offer's order among the codecs we accept (JSEP): the caller
        # chooses, so both ends of a call through the exchange end up with the same codec.
        accepted = [c for c in codecs_of(offer_sdp) if c in self.settings.codec_preferences]
        self._transceiver.setCodecPreferences(self._capabilities(accepted))
        await self._step("bad offer SDP", self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=offer_sdp, type="offer")))
        self._cap_bitrate(offer_sdp)
        gatherer = self._transceiver.receiver.transport.transport.iceGatherer
        with self._addresses():
            # RTCIceGatherer.gather() is ORTC's public API; setLocalDescription reuses its result.
            self._gathered = self._start(gatherer.gather())
        await self._finish("cannot gather ICE candidates", self._gathered)
        self._require_candidates()

    async def answer(self) -> str:
        """Create and apply the answer (no gathering left to do); return its SDP."""
        if self._gathered is not None:
            await self._finish("cannot gather ICE candidates", self._gathered)
        with self._addresses():
            await self._step("cannot create the answer", self._apply_local(self.pc.createAnswer))
        sdp = self.pc.localDescription.sdp
        self._codec = codec_of(sdp)
        return sdp

    # --- the aiortc boundary ----------------------------------------------------------------
    def _addresses(self) -> contextlib.AbstractContextManager[None]:
        return hooks.ice_addresses(self.settings.ice_addresses, self.settings.ice_loopback)

    async def _apply_local(self, create: Callable[[], Awaitable[RTCSessionDescription]]) -> None:
        description = await create()
        sdp = opus_fmtp.with_max_average_bitrate(description.sdp,
                                                 self.settings.max_average_bitrate)
        await self.pc.setLocalDescription(RTCSessionDescription(sdp=sdp, type=description.type))
        if self.settings.dscp:  # the sockets exist now (gathered)
            dscp.mark_connection(self._ice_connection())

    def _ice_connection(self) -> Any:
        """aioice's Connection under the ICE transport (its sockets: dscp.py)."""
        return self._transceiver.receiver.transport.transport.iceGatherer._connection

    def media_sockets(self) -> list[socket.socket]:
        """The UDP sockets this session sends from (to read their DSCP mark)."""
        return dscp.sockets(self._ice_connection())

    def _cap_bitrate(self, remote_sdp: str) -> None:
        """Encode Opus at no more than the far end's maxaveragebitrate (RFC 7587 7.1)."""
        asked = opus_fmtp.max_average_bitrate_of(remote_sdp)
        if asked is not None:
            self._sending.opus_bitrate = min(self.settings.opus_bitrate, asked)

    def _checked_remote(self, sdp: str, kind: str) -> str:
        """The far end's SDP as remote_sdp.check made it (once per SDP), or MediaError."""
        if self._checked is None or self._checked[0] != sdp:
            try:
                checked = remote_sdp.check(sdp, kind, self.settings.max_remote_candidates)
            except remote_sdp.SdpError as exc:
                raise MediaError(f"bad {kind} SDP: {exc}") from exc
            self._checked = (sdp, checked)
        return self._checked[1]

    def _start(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run one aiortc operation as a task of ours: none starts once the session closes,
        and close() waits for the ones under way (see close)."""
        if self._closing:
            coro.close()
            raise MediaError("the media session is closed")
        task = asyncio.ensure_future(coro)  # copies the context: ICE addresses reach gathering
        self._steps.add(task)
        task.add_done_callback(self._step_done)
        return task

    def _step_done(self, task: asyncio.Task[Any]) -> None:
        self._steps.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here: a caller cancelled meanwhile never reads it

    async def _finish(self, what: str, task: asyncio.Task[T]) -> T:
        try:
            # shielded: a cancelled caller leaves the operation to end, and close() to wait
            # for it, instead of stopping aiortc half-way through opening sockets
            return await asyncio.shield(task)
        except (MediaError, asyncio.CancelledError):
            raise
        except Exception as exc:  # aiortc raises ValueError, InvalidStateError and others
            raise MediaError(f"{what}: {_describe(exc)}") from exc

    async def _step(self, what: str, coro: Coroutine[Any, Any, T]) -> T:
        return await self._finish(what, self._start(coro))

    def _require_candidates(self) -> None:
        """MediaError if gathering found nothing to offer: ICE cannot work, say why now."""
        gatherer = self._transceiver.receiver.transport.transport.iceGatherer
        if gatherer.getLocalCandidates():
            return
        addresses = self.settings.ice_addresses
        if addresses is not None:
            why = (f"ice_addresses {', '.join(addresses)} are not addresses of this machine"
                   if addresses else "ice_addresses is empty")
        else:
            why = ("this machine has no network address but loopback, which is offered only "
                   "to a peer reached over loopback (set ice_addresses to choose)")
        if self.settings.ice_servers:
            why += "; no STUN/TURN server answered either"
        log.warning("no ICE candidate: %s", why)
        raise NoIceCandidate(f"no ICE candidate to offer: {why}")

    # --- both ----------------------------------------------------------------------------
    @property
    def codec(self) -> str | None:
        """The negotiated codec (opus or pcmu), None before the answer. Never raises: it is
        read while calls end, and aiortc's descriptions can raise when written out."""
        return self._codec

    @property
    def state(self) -> str:
        return self.pc.connectionState

    @property
    def local_sdp(self) -> str:
        """Our SDP as applied, "" before there is one. Never raises: aiortc writes its
        description out afresh at each read, and a far end's odd SDP can make that fail."""
        try:
            description = self.pc.localDescription
        except Exception as exc:
            log.warning("media: our local description is unreadable: %s", _describe(exc))
            return ""
        return description.sdp if description is not None else ""

    @property
    def remote_sdp(self) -> str:
        """The far end's SDP as it sent it (the last one taken), "" before there is one."""
        return self._checked[0] if self._checked is not None else ""

    @property
    def ice_completed(self) -> bool:
        return self.pc.iceConnectionState == "completed"

    @property
    def packets_received(self) -> int:
        relayed = self._relay_in.packets if self._relay_in is not None else 0
        return self.jitter_buffer.received + relayed

    async def counters(self) -> Counters:
        """Figures from aiortc's public ``getStats``, plus what aiortc does not report: payload
        bytes received and the buffer's figures (jitter.py), and the far end's highest
        received sequence number (RTCP receiver reports)."""
        # The sender's and receiver's getStats (what pc.getStats gathers), awaited in turn:
        # no tasks for asyncio.gather to make every second.
        inbound = outbound = remote = None
        parts: list[RTCRtpSender | RTCRtpReceiver] = [*self.pc.getSenders(),
                                                     *self.pc.getReceivers()]
        for part in parts:
            for stats in (await part.getStats()).values():
                if getattr(stats, "kind", "audio") != "audio":
                    continue
                if isinstance(stats, RTCInboundRtpStreamStats):
                    inbound = stats
                elif isinstance(stats, RTCOutboundRtpStreamStats):
                    outbound = stats
                elif isinstance(stats, RTCRemoteInboundRtpStreamStats):
                    remote = stats
        codec = self.codec or ""
        buffer = self.jitter_buffer.stats()
        rtt = remote.roundTripTime if remote is not None else None
        return Counters(
            bytes_sent=outbound.bytesSent if outbound else 0,
            packets_sent=outbound.packetsSent if outbound else 0,
            packets_received=inbound.packetsReceived if inbound else 0,
            packets_lost=max(0, inbound.packetsLost) if inbound else 0,  # <0 with duplicates
            jitter=inbound.jitter * 1000 / CLOCK_RATE.get(codec, 48_000) if inbound else None,
            rtt=rtt * 1000 if rtt is not None else None,
            bytes_received=buffer.bytes_received + (
                self._relay_in.bytes if self._relay_in is not None else 0),
            codec_name=codec,
            far_received=self.far_received,
            buffer_depth=buffer.depth,
            buffer_target=buffer.target_depth,
            concealed=buffer.concealed,
            late=buffer.late,
        )

    def network(self) -> NetworkReport:
        return self._network.report()

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
        """Close the peer connection and what it opened (idempotent).

        An aiortc operation under way (applying a description, gathering) is waited for
        first, at most CLOSE_WAIT seconds, then cancelled: closed under it, aiortc goes on to
        gather on the closed connection and opens sockets nobody closes."""
        self._closing = True
        self._stop_pump()
        self._stop_relay()
        if self._relay_out is not None:
            self._relay_out.close()
        try:
            steps = list(self._steps)
            if steps:
                _, pending = await asyncio.wait(steps, timeout=CLOSE_WAIT)
                for task in pending:
                    log.warning("media: an aiortc operation outlived %.0f s; cancelled",
                                CLOSE_WAIT)
                    task.cancel()
        finally:
            try:
                await self.pc.close()
                await hooks.stop_after_close(self.pc)  # a connect may have raced the close
            except Exception as exc:  # the sockets are closed before aiortc could raise
                log.warning("media: closing the peer connection: %s", _describe(exc))
            # A receiver that never started never ends its track: the sink is not waited for.
            self._playing.cancel()

    def _state_changed(self) -> None:
        state = self.pc.connectionState
        log.debug("media connection %s", state)
        if state == "connected":
            self._connected.set()
        elif state in ("failed", "closed"):
            self._failed.set()
        if self.on_state is not None:
            self.on_state(state)

    def meter_levels(self, on_tick: Callable[[], None] | None = None,
                     tick_every: float = 0.05) -> None:
        """Meter the PCM we send (before encoding) and hear (after decoding); ``on_tick`` is
        called every ``tick_every`` seconds of audio sent."""
        self.input_meter = LevelMeter(on_tick, tick_every, reader=AvFrames())
        self.output_meter = LevelMeter(reader=AvFrames())
        self._sending.meter = self.input_meter
        self.receive_tap.meter = self.output_meter

    # --- bridging (the exchange's legs) -------------------------------------------------
    def forward_to(self, outbox: Outbox) -> None:
        """Send each packet this session receives on as ``outbox``'s session's (relay.py),
        undecoded and at once: no buffer of ours, the far end's absorbs the jitter."""
        if outbox.relay is None:
            raise MediaError("forwarding needs an Outbox that a media session sends")
        self._stop_pump()
        self.receive_tap.forward = None
        outbox.forward_from(self.codec)
        if self._relay_in is None:
            self._relay_in = RelayIn(self._transceiver, self._ice_connection())
        assert isinstance(outbox.relay, RelayOut)  # what __post_init__ gives an Outbox
        self._relay_in.start(outbox.relay)

    def decode_to(self, outbox: PcmTarget | None) -> None:
        """Decode what this session receives into ``outbox`` (None: drain and discard)."""
        self._stop_pump()
        self._stop_relay()
        self.receive_tap.forward = None
        if isinstance(outbox, Outbox):  # it sends what is decoded now, re-encoded
            outbox.decode_from(narrowband=self.codec == "pcmu")
        self._pump = self._playing.spawn(self._decode_into(outbox))

    async def _decode_into(self, outbox: PcmTarget | None) -> None:
        await self._remote_arrived.wait()
        assert self._remote is not None
        await forwarding.decode_into(self._remote, outbox)

    def _stop_relay(self) -> None:
        if self._relay_in is not None:
            self._relay_in.stop()

    def _stop_pump(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None

    def __repr__(self) -> str:  # not the dataclass's: the settings hold TURN credentials
        return f"<MediaSession {self.codec or '-'} {self.pc.connectionState}>"

    def _receiver_report(self, report: RtcpReceiverInfo) -> None:
        self.far_received = report.highest_sequence

    def _track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio":
            return
        self._remote = track
        self._remote_arrived.set()
        if self.sink is not None:
            # A PCM sink is handed each frame as it is decoded; a track sink reads the track.
            try:
                direct = writer_for(self.sink)  # starts a PCM sink
            except Exception:  # the call goes on unheard, as when a play task failed
                log.error("media: the audio sink did not start", exc_info=True)
                direct = _discard  # what is decoded is dropped, not queued for nobody
            if direct is not None:
                self.receive_tap.direct = direct
            else:
                self._playing.spawn(play(track, self.sink))
        if self.on_remote_track is not None:
            self.on_remote_track(track)


def _discard(frame: av.AudioFrame) -> None:
    pass


def _describe(exc: BaseException) -> str:
    """An exception in one bounded, printable line (aiortc's messages may quote the SDP)."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(exc)[:200])
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _rtc_ice_server(server: IceServer) -> RTCIceServer:
    urls = server.urls if isinstance(server.urls, str) else list(server.urls)
    return RTCIceServer(urls=urls, username=server.username, credential=server.credential)
