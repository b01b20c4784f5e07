"""The one place where piphone reaches into aiortc/aioice internals (but for relay.py, the
exchange's forwarding at the SRTP level, and sending.py, a call's RTP sender loop, which read
and write the private state of the receiver and sender they stand in for, and say so there).

aioice gathers host candidates from every interface except loopback
(``aioice.ice.get_host_addresses``) and has no option to choose them. A phone needs that
choice: a Pi with eth0 and wlan0 should offer one, and tests on a loopback-only network
namespace must offer 127.0.0.1 or ICE has no candidate at all; a peer reached over loopback
(an exchange bound to 127.0.0.1) is offered loopback as well. We wrap that module-level
function once; the addresses for a gathering are set in a ContextVar by whoever gathers,
so peers in one process (the exchange and clients in tests) can differ.

aioice hands every datagram that is not STUN to DTLS, whatever its source: a plaintext DTLS
alert from any host that knows the port fails a call being set up, and an empty datagram
ends aiortc's DTLS reader (it reads the first byte). ``StunProtocol.datagram_received`` is
wrapped so that DTLS and RTP come only from the ICE peer: before a pair is chosen, from the
remote candidates' addresses and from sources of authenticated checks; once one is, only on
the pairs ICE validated (the nominated one, and those the peer nominated or that passed a
check: each side sends on the pair it nominated, and aioice lets the two differ). STUN
itself still goes to aioice, which authenticates it. There, too, the exchange takes the SRTP
of a leg it forwards before aioice queues it (``set_rtp_relay``, relay.py).

aiortc computes the RFC 6465 audio level of every frame it sends in a pure-Python loop over
the samples (``aiortc.rtp.compute_audio_level_dbov``): about a tenth of a call's CPU on a Pi.
We replace it with the same formula in numpy, which gives identical values.

aiortc decodes received audio in a thread of its own and hands every 20 ms frame back to the
event loop with ``run_coroutine_threadsafe``: two thread switches and a task per frame, more
than the decoding itself. ``decode_on_loop`` swaps the receiver's private decoder queue
(``RTCRtpReceiver.__decoder_queue``, read by that thread) for one that decodes at once on
the loop and feeds the track; the thread stays, idle, to end the track when aiortc stops it.
The datagram filter also hands SRTP from the ICE peer straight to the DTLS transport's
handler, skipping aioice's queue and aiortc's reader task (arrival.py).

aiortc's RTCPeerConnection.close() stops senders and receivers before their transports and
yields in between, so a connect completing meanwhile starts RTP/RTCP loops on the closed
connection; ``stop_after_close`` stops them again (MediaSession.close calls it). aioice's
Connection.connect has the like race with close() (``_connect_unless_closed``).

Pinned versions: see pyproject.toml. ``check()`` fails loudly, naming the hook, if an
upgrade removed what we rely on; tests/unit/test_call_api.py and test_jitter.py run the checks.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import ipaddress
import logging
import math
import queue
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeAlias, cast

import aioice.ice
import aiortc
import aiortc.rtcrtpreceiver
import aiortc.rtp
import av
import numpy as np
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.rtp import AnyRtcpPacket, RtcpReceiverInfo
from av.frame import Frame

from ...pcm import LevelMeter
from . import arrival, sending
from .decoding import voice_decoder
from .jitter import AudioJitterBuffer

# (addresses, loopback): addresses None means "aioice's own choice" (every non-loopback
# address), to which loopback adds 127.0.0.1.
_ice_addresses: contextvars.ContextVar[tuple[tuple[str, ...] | None, bool]] = (
    contextvars.ContextVar("piphone_ice_addresses", default=(None, False)))
LOOPBACK = "127.0.0.1"
Address: TypeAlias = tuple[Any, ...]  # (host, port) as asyncio hands a datagram's source

# What we wrap or replace, as it was (None: an upgrade removed it, and check() says so).
_original_get_host_addresses: Callable[..., list[str]] | None = getattr(
    aioice.ice, "get_host_addresses", None)
_original_audio_level: Callable[[Frame], int] | None = getattr(
    aiortc.rtp, "compute_audio_level_dbov", None)
_StunProtocol: type[aioice.ice.StunProtocol] | None = getattr(aioice.ice, "StunProtocol", None)
_original_datagram_received: Callable[[aioice.ice.StunProtocol, bytes, Address], None] | None = (
    getattr(_StunProtocol, "datagram_received", None))
# What the datagram filter reads of aioice's Connection and CandidatePair (and dscp.py reads
# _protocols, the sockets to mark; network.py reads _nominated).
_CONNECTION_FIELDS = ("_nominated", "_check_list", "_remote_candidates", "_early_checks",
                      "_protocols")
_original_connect: Callable[[aioice.ice.Connection], Awaitable[None]] | None = getattr(
    aioice.ice.Connection, "connect", None)


class HookMissing(RuntimeError):
    """aiortc/aioice changed: a private hook piphone relies on is gone."""


def check() -> None:
    if _original_get_host_addresses is None:
        raise HookMissing(
            "aioice.ice.get_host_addresses is gone: piphone cannot choose ICE host addresses"
        )
    if aioice.ice.get_host_addresses is not _chosen_host_addresses:
        raise HookMissing("aioice.ice.get_host_addresses is not wrapped by piphone")
    if _original_audio_level is None or aiortc.rtp.compute_audio_level_dbov is not audio_level:
        raise HookMissing("aiortc.rtp.compute_audio_level_dbov is gone or not replaced")
    if (_original_datagram_received is None or _StunProtocol is None
            or _StunProtocol.datagram_received is not _from_peer
            or "data_received" not in _original_datagram_received.__code__.co_names):
        raise HookMissing("aioice.ice.StunProtocol.datagram_received is gone, not wrapped or "
                          "no longer hands data to data_received: piphone cannot keep DTLS "
                          "and RTP to the ICE peer")
    init_names = aioice.ice.Connection.__init__.__code__.co_names
    if (_original_connect is None or aioice.ice.Connection.connect is not _connect_unless_closed
            or not {"_closing", "_query_consent_task"} <= set(init_names)):
        raise HookMissing("aioice.ice.Connection.connect is gone, not wrapped or its close "
                          "flags changed: a connection closed while it connects would check "
                          "consent for ever")
    _check_stop_after_close()
    _check_receiver_hooks()
    for changed in (arrival.problem(), sending.problem()):
        if changed is not None:
            raise HookMissing(changed)
    missing = [name for name in _CONNECTION_FIELDS if name not in init_names]
    pair = getattr(aioice.ice, "CandidatePair", None)
    if missing or pair is None or not all(
            hasattr(pair, a) for a in ("remote_addr", "State")):
        raise HookMissing(f"aioice's Connection/CandidatePair changed ({missing or 'pairs'}): "
                          "piphone cannot tell the ICE peer's datagrams")


# What the stop after close (stop_after_close) needs of aiortc: each stop() still cancels the
# RTP/RTCP tasks its start made, once it started (so stopping twice is harmless).
_STOPS = {
    "RTCRtpSender": ("_RTCRtpSender__started", "_RTCRtpSender__rtp_task",
                     "_RTCRtpSender__rtcp_task"),
    "RTCRtpReceiver": ("_RTCRtpReceiver__started", "_RTCRtpReceiver__rtcp_task",
                       "_RTCRtpReceiver__stop_decoder"),
}


def _check_stop_after_close() -> None:
    for name, needed in _STOPS.items():
        stop = getattr(getattr(aiortc, name, None), "stop", None)
        code = getattr(stop, "__code__", None)
        if (not inspect.iscoroutinefunction(stop) or code is None
                or not set(needed) <= set(code.co_names)):
            raise HookMissing(
                f"aiortc.{name}.stop is gone or no longer stops what its start began: "
                "MediaSession.close stops senders and receivers again after the peer "
                "connection closed (stop_after_close), or a connect that completes while it "
                "closes leaves RTP/RTCP loops running on the closed connection")
    if not callable(getattr(aiortc.RTCPeerConnection, "getTransceivers", None)):
        raise HookMissing("aiortc.RTCPeerConnection.getTransceivers is gone: "
                          "stop_after_close cannot find the senders and receivers")


def _check_receiver_hooks() -> None:
    """The hooks applied per session (they raise HookMissing there too): checked up front."""
    if _JITTER_BUFFER not in _handle_rtp_reads:
        raise HookMissing(f"RTCRtpReceiver._handle_rtp_packet no longer reads "
                          f"{_JITTER_BUFFER}: cannot replace its jitter buffer")
    if _DECODER_QUEUE not in aiortc.RTCRtpReceiver.__init__.__code__.co_names:
        raise HookMissing(f"RTCRtpReceiver has no {_DECODER_QUEUE}: cannot decode on the loop")
    if not inspect.iscoroutinefunction(getattr(aiortc.RTCRtpSender, "_handle_rtcp_packet",
                                               None)):
        raise HookMissing("RTCRtpSender has no _handle_rtcp_packet: cannot watch RTCP reports")


async def stop_after_close(pc: aiortc.RTCPeerConnection) -> None:
    """Stop a closed peer connection's senders and receivers again.

    aiortc's close() stops senders and receivers before it stops their transports, and
    yields in between: a connect that completes in that window starts RTP/RTCP loops on the
    closed connection that nothing would stop. Stopping again stops them (a stop that finds
    nothing started does nothing)."""
    for transceiver in pc.getTransceivers():
        await transceiver.sender.stop()
        await transceiver.receiver.stop()


def _chosen_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    chosen, loopback = _ice_addresses.get()
    if chosen is None:
        assert _original_get_host_addresses is not None  # wrapped only when it was there
        result = _original_get_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
        if loopback and use_ipv4 and LOOPBACK not in result:
            result.append(LOOPBACK)
        return result
    result = []
    for address in chosen:
        version = ipaddress.ip_address(address).version
        if (version == 4 and use_ipv4) or (version == 6 and use_ipv6):
            result.append(address)
    return result


# --- datagrams only from the ICE peer ------------------------------------------------------
_dropped: weakref.WeakKeyDictionary[aioice.ice.Connection, int] = weakref.WeakKeyDictionary()


def dropped_datagrams(connection: aioice.ice.Connection) -> int:
    """How many datagrams ``connection`` (an aioice Connection) dropped as not from its peer."""
    return _dropped.get(connection, 0)


def _from_peer(self: aioice.ice.StunProtocol, data: bytes, addr: Address) -> None:
    """StunProtocol.datagram_received, passing DTLS and RTP only from the ICE peer."""
    # RFC 7983: a first byte of 0-3 is STUN (aioice parses and authenticates it); anything
    # else is DTLS or RTP, which aioice would hand on after failing to parse it as STUN: we
    # hand it on ourselves, from the peer only (and save the parse, ~1.5 us a packet).
    if data and data[0] < 4:
        assert _original_datagram_received is not None  # wrapped only when it was there
        _original_datagram_received(self, data, addr)
    elif data and _sent_by_peer(self.receiver, self, addr):
        relay = getattr(self.receiver, _RELAY, None)  # the exchange's forwarding (relay.py)
        path: arrival.ArrivalPath | None = getattr(self.receiver, arrival.ATTRIBUTE, None)
        if (relay is None or not relay(data)) and (path is None or not path.take(data)):
            # neither relayed nor handled at once (arrival.py): aioice's way
            self.receiver.data_received(data, self.local_candidate.component)
    else:
        connection = self.receiver
        count = _dropped.get(connection, 0)
        _dropped[connection] = count + 1
        if count == 0:  # once per connection: a flood writes one line
            log.info("ICE %s: dropping datagrams from %s:%s, not the ICE peer",
                     getattr(connection, "_id", "?"), addr[0], addr[1])


_RELAY = "piphone_rtp_relay"  # set on an aioice Connection whose RTP the exchange relays


def set_rtp_relay(connection: aioice.ice.Connection,
                  relay: Callable[[bytes], bool] | None) -> None:
    """Hand each datagram ``connection``'s ICE peer sends to ``relay`` before aioice queues
    it for DTLS; what ``relay`` returns False for goes on to aioice (None: stop)."""
    setattr(connection, _RELAY, relay)


def _sent_by_peer(connection: aioice.ice.Connection, protocol: aioice.ice.StunProtocol,
                  addr: Address) -> bool:
    source = (addr[0], addr[1])
    nominated = connection._nominated
    if nominated:
        for pair in nominated.values():  # the common case: one component, one pair
            if pair.protocol is protocol and pair.remote_addr == source:
                return True
        succeeded = aioice.ice.CandidatePair.State.SUCCEEDED
        return any(pair.protocol is protocol and pair.remote_addr == source
                   and (pair.state is succeeded or pair.remote_nominated)
                   for pair in connection._check_list)
    return (any(c._network_host == source[0] and c.port == source[1]
                for c in connection._remote_candidates)
            or any(check[1] == source for check in connection._early_checks))


# --- a connection closed while it connects stays closed ----------------------------------------
async def _connect_unless_closed(self: aioice.ice.Connection) -> None:
    """Connection.connect, failing if the connection was closed meanwhile.

    aioice's connect() paces its checks with 20 ms sleeps: when close() comes after the check
    list completed but before connect() wakes up, connect() goes on to start consent checks on
    the closed connection, which then run for ever (a task nobody owns; the far end of a call
    that ended at that moment). Closed is closed: fail, as a close earlier on does."""
    assert _original_connect is not None  # wrapped only when it was there
    await _original_connect(self)
    if self._closing:
        task, self._query_consent_task = self._query_consent_task, None
        if task is not None:
            task.cancel()
        raise ConnectionError("ICE connection closed while connecting")


def audio_level(frame: av.AudioFrame) -> int:
    """RFC 6465 level in dBov, exactly as aiortc's loop computes it (same sum, same rounding)."""
    samples = np.frombuffer(bytes(frame.planes[0]), dtype="<i2").astype(np.int64)
    energy = int(np.dot(samples, samples))
    rms = math.sqrt(energy / (frame.samples * 32767 * 32767))
    if rms <= 0:
        return -127
    return round(min(0.0, max(-127.0, 20 * math.log10(rms))))


_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
log = logging.getLogger(__name__)


class ReceiveTap:
    """Stands in for the receiver's decoder queue: ``put`` decodes on the loop, or, when
    ``forward`` is set, hands each encoded frame (codec, JitterFrame) to it undecoded (the
    exchange forwards Opus between legs this way)."""

    def __init__(self, receiver: aiortc.RTCRtpReceiver) -> None:
        self._receiver = receiver
        self._to_thread: queue.Queue[None] = queue.Queue()  # only the end-of-stream marker
        self._decoders: dict[str, Decoder] = {}
        # hands each encoded frame on undecoded (the exchange's forwarding: forwarding.py)
        self.forward: Callable[[aiortc.RTCRtpCodecParameters, JitterFrame], None] | None = None
        # fed every decoded frame (the call's quality monitor)
        self.meter: LevelMeter[av.AudioFrame] | None = None
        self.listener: Callable[[av.AudioFrame], None] | None = None  # a Call's remote stream
        # takes each decoded frame in place of the track's queue (a PCM sink: tracks.writer_for)
        self.direct: Callable[[av.AudioFrame], None] | None = None
        self.direct_failures = 0  # frames the direct writer raised on (logged once)

    def get(self, block: bool = True, timeout: float | None = None) -> None:
        return self._to_thread.get(block, timeout)  # aiortc's idle decoder thread waits here

    def put(self, task: tuple[aiortc.RTCRtpCodecParameters, JitterFrame] | None) -> None:
        if task is None:
            self._to_thread.put(None)  # the thread ends the track, as aiortc does
            return
        codec, encoded_frame = task
        if self.forward is not None:
            self.forward(codec, encoded_frame)
            return
        decoder = self._decoders.get(codec.name)
        if decoder is None:
            decoder = self._decoders[codec.name] = voice_decoder(codec)  # Opus: mono
        try:
            frames = decoder.decode(encoded_frame)
        except av.FFmpegError as exc:
            log.warning("could not decode a %s frame: %s", codec.name, exc)
            return
        track = cast(RemoteStreamTrack, self._receiver.track)
        for frame in frames:
            audio = cast(av.AudioFrame, frame)  # an audio decoder's
            if self.meter is not None:
                self.meter.push(audio)
            if self.listener is not None:
                self.listener(audio)
            if self.direct is None:
                track._queue.put_nowait(frame)
                continue
            try:
                self.direct(audio)
            except Exception:  # the sink's fault: that frame is lost, not the call's audio
                self.direct_failures += 1
                if self.direct_failures == 1:
                    log.warning("the audio sink failed on a frame", exc_info=True)


def decode_on_loop(receiver: aiortc.RTCRtpReceiver) -> ReceiveTap:
    """Make ``receiver`` (before it starts) decode on the event loop; see the module doc."""
    if not isinstance(getattr(receiver, _DECODER_QUEUE, None), queue.Queue):
        raise HookMissing(f"RTCRtpReceiver has no {_DECODER_QUEUE}: cannot decode on the loop")
    tap = ReceiveTap(receiver)
    setattr(receiver, _DECODER_QUEUE, tap)
    return tap


if _original_get_host_addresses is not None:
    aioice.ice.get_host_addresses = _chosen_host_addresses
if _original_audio_level is not None:
    aiortc.rtp.compute_audio_level_dbov = audio_level
if _original_datagram_received is not None and _StunProtocol is not None:
    _StunProtocol.datagram_received = _from_peer  # type: ignore[method-assign,assignment]
if _original_connect is not None:
    aioice.ice.Connection.connect = _connect_unless_closed  # type: ignore[method-assign]


@contextlib.contextmanager
def ice_addresses(addresses: Sequence[str] | None, loopback: bool = False) -> Iterator[None]:
    """Within this block (and tasks it starts), ICE offers exactly ``addresses``; None:
    aioice's choice, plus 127.0.0.1 if ``loopback`` (the peer is on this machine)."""
    if addresses is not None:
        for address in addresses:
            ipaddress.ip_address(address)  # raises ValueError for a bad address
    token = _ice_addresses.set(
        (tuple(addresses) if addresses is not None else None, loopback))
    try:
        yield
    finally:
        _ice_addresses.reset(token)


_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
# aiortc's own packet handler, as imported (tests may wrap the method later)
_handle_rtp_reads = aiortc.rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet.__code__.co_names


def use_jitter_buffer(receiver: aiortc.RTCRtpReceiver,
                      buffer: AudioJitterBuffer | None = None) -> AudioJitterBuffer:
    """Make an audio ``receiver`` (before media flows) use ``buffer`` (by default piphone's
    ``AudioJitterBuffer``, voice/rtc/jitter.py) in place of aiortc's fixed four-frame one, which
    ``_handle_rtp_packet`` keeps in the private ``RTCRtpReceiver.__jitter_buffer`` and feeds
    with ``add(packet)``. Returns the buffer (its ``stats()`` are the call's)."""
    current = getattr(receiver, _JITTER_BUFFER, None)
    if _JITTER_BUFFER not in _handle_rtp_reads or not hasattr(current, "add"):
        raise HookMissing(f"RTCRtpReceiver has no {_JITTER_BUFFER} fed by _handle_rtp_packet: "
                          "cannot replace its jitter buffer")
    if buffer is None:
        buffer = AudioJitterBuffer()
    setattr(receiver, _JITTER_BUFFER, buffer)
    return buffer


def watch_receiver_reports(sender: aiortc.RTCRtpSender,
                           callback: Callable[[RtcpReceiverInfo], None]) -> None:
    """Call ``callback(report)`` with each RTCP report block the far end sends about what
    ``sender`` sent (``RtcpReceiverInfo``: ``highest_sequence``, ``packets_lost``, ...).

    aiortc turns these reports into ``remote-inbound-rtp`` stats whose ``packetsReceived`` is
    our own count minus the far end's losses, so it keeps growing when nothing arrives there;
    the one-way-audio check needs the far end's highest sequence number itself. We wrap the
    sender's RTCP handler (called by the DTLS transport through the instance) once.
    """
    original: Callable[[AnyRtcpPacket], Awaitable[None]] | None = getattr(
        sender, "_handle_rtcp_packet", None)
    if original is None:
        raise HookMissing("RTCRtpSender has no _handle_rtcp_packet: cannot watch RTCP reports")

    async def handle(packet: AnyRtcpPacket) -> None:
        if isinstance(packet, aiortc.rtp.RtcpRrPacket | aiortc.rtp.RtcpSrPacket):
            for report in packet.reports:
                if report.ssrc == sender._ssrc:
                    callback(report)
        await original(packet)

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]
