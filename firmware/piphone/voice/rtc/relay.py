"""Forwarding at the SRTP level: the exchange's bridge between two legs of one codec.

aiortc's path for a forwarded packet costs far more than the packet: the ICE connection's
queue and a task wake-up to the DTLS reader, RtpPacket parsing, the receiver's handler and
jitter buffer, the Outbox's queue and a second task wake-up to the other leg's sender, which
builds a new RtpPacket. ``RelayIn`` takes a leg's SRTP packets as the datagram arrives
(hooks.py hands them over before aioice queues them), decrypts them with that leg's SRTP
session, and ``RelayOut`` rewrites SSRC, payload type, sequence number and timestamp for the
other leg and encrypts and sends them there at once: no task, no queue, no copy of aiortc's
objects per packet. RTP header parsing and building is written out here (not aiortc's
RtpPacket) because that is most of what the packet costs in Python.

What aiortc still does, and why it keeps working:
- RTCP goes the usual way (only RTP is taken): the receiver's reports are made from aiortc's
  own per-source statistics, which ``RelayIn`` feeds (``StreamStatistics.add``), so the
  client's quality figures (loss, jitter, RTT) and the exchange's per-leg quality stay true;
  the sender's reports count what ``RelayOut`` sent (its packet, octet and timestamp fields
  are kept up to date), under the sender's own SSRC, so the far end's reports reach it.
- DTLS, ICE (consent, restarts are new sessions) are untouched.

The outgoing timeline belongs to the sending leg (``Timeline``): relayed packets, and what
aiortc's sender sends itself (before a bridge, and while audio is decoded or played into the
leg: a conference, a ringback), so sequence numbers and timestamps go on across every switch
(aiortc's own fall behind while we relay: the far end's SRTP replay check would drop them).
A source's packets keep its gaps (a loss or a reordering upstream stays visible to the far
end's jitter buffer, which is where concealment belongs), and when the source changes (the
other sender, a leg that restarted its media), jumps, or goes quiet, carry on by one frame.
A source quiet for FILL_AFTER gets a frame of silence every 20 ms in its place
(forwarding.py says why).

A payload type is mapped by codec name: whatever both legs negotiated (Opus, PCMU, and
RFC 4733 telephone-event where offered) is relayed; anything else is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
import time
from collections.abc import Callable, Coroutine
from typing import Any, cast

import aiortc
import pylibsrtp
from aiortc.rtcrtpreceiver import StreamStatistics

from .forwarding import FILL_AFTER, SILENCE_CODECS, silence_payload
from .hooks import HookMissing, set_rtp_relay
from .jitter import CLOCK_RATE
from .sending import EXTENSION, HEADER, count_sent, header_start

log = logging.getLogger(__name__)

_SEND_RTP = "_send_rtp"  # aiortc's RTCDtlsTransport method every RTP packet goes through
_PLACE = struct.Struct("!HI")  # sequence, timestamp
_TIMESTAMP = struct.Struct("!I")  # a sender report's RTP timestamp
MAX_MISORDER = 100  # sequence numbers behind the newest: later than that is a new timeline
MAX_STEP = 3000  # sequence numbers ahead (a minute of 20 ms frames): further is a jump
FILL_EVERY = 0.020  # seconds between frames of silence while the source is quiet
# Sources (SSRCs) one leg's statistics keep: a client that makes up a new one per packet must
# not grow them (a restart is a new session; a leg has one source, a few at most).
MAX_SOURCES = 4


class RtpView:
    """What the relay reads of a plain RTP packet (``parse``)."""

    __slots__ = ("payload_type", "marker", "sequence_number", "timestamp", "ssrc",
                 "start", "end")

    def __init__(self, payload_type: int, marker: int, sequence_number: int, timestamp: int,
                 ssrc: int, start: int, end: int) -> None:
        self.payload_type = payload_type
        self.marker = marker  # 0 or 0x80, as in the second byte
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.start = start  # payload: packet[start:end]
        self.end = end


def parse(packet: bytes) -> RtpView | None:
    """The header of a plain RTP packet (RFC 3550 5.1), or None when it is not well formed."""
    if len(packet) < 12:
        return None
    first, second, seq, ts, ssrc = HEADER.unpack_from(packet)
    if first >> 6 != 2:
        return None
    start = 12 + 4 * (first & 0x0F)  # CSRCs
    if first & 0x10:  # header extension
        if start + 4 > len(packet):
            return None
        start += 4 + 4 * EXTENSION.unpack_from(packet, start)[1]
    end = len(packet)
    if first & 0x20:  # padding: its last byte says how much
        end -= packet[-1]
        if packet[-1] == 0:
            return None
    if start > end:
        return None
    return RtpView(second & 0x7F, second & 0x80, seq, ts, ssrc, start, end)


def _seq_delta(a: int, b: int) -> int:
    """a - b in sequence-number space (-32768..32767)."""
    d = (a - b) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d


class Timeline:
    """The sequence numbers and timestamps one leg sends (see the module doc)."""

    def __init__(self, seq: int | None = None, ts: int | None = None) -> None:
        # The newest sent, which the next source or a fill goes on from.
        self.seq = random.getrandbits(16) if seq is None else seq
        self.ts = random.getrandbits(32) if ts is None else ts
        self._source: int | None = None  # SSRC of the source the offsets are for
        self._last_in = 0  # the source's newest sequence number
        self._seq_offset = 0
        self._ts_offset = 0

    def place(self, ssrc: int, seq: int, ts: int, frame_ticks: int) -> tuple[int, int]:
        """Where a source packet goes on our timeline: (sequence number, timestamp)."""
        delta = _seq_delta(seq, self._last_in)
        if ssrc != self._source or not -MAX_MISORDER <= delta <= MAX_STEP:
            # a new source, a jump, or back after a fill: the next frame after ours
            self._seq_offset = (self.seq + 1 - seq) & 0xFFFF
            self._ts_offset = (self.ts + frame_ticks - ts) & 0xFFFFFFFF
            self._source, self._last_in, delta = ssrc, seq, 1
        out_seq = (seq + self._seq_offset) & 0xFFFF
        out_ts = (ts + self._ts_offset) & 0xFFFFFFFF
        if delta > 0:
            self._last_in = seq
            self.seq, self.ts = out_seq, out_ts
        return out_seq, out_ts

    def fill(self, frame_ticks: int) -> tuple[int, int]:
        """The place of a frame of our own (silence): the source resumes after it."""
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + frame_ticks) & 0xFFFFFFFF
        self._source = None
        return self.seq, self.ts


def _private(obj: object, cls: str, name: str) -> Any:
    """An aiortc object's private attribute, or HookMissing naming it."""
    try:
        return getattr(obj, f"_{cls}__{name}")
    except AttributeError:
        raise HookMissing(f"aiortc's {cls} has no __{name}: the exchange cannot forward at "
                          "the SRTP level (relay.py)") from None


class RelayOut:
    """What one leg sends while it forwards another's packets: its timeline, the silence fill,
    and the sender report's counts. Made by the leg's session; the source's RelayIn calls
    ``send`` for each packet."""

    def __init__(self, transceiver: aiortc.RTCRtpTransceiver, connection: Any,
                 codec: Callable[[], str | None],
                 spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]) -> None:
        self._transceiver = transceiver
        self._sender: Any = transceiver.sender  # its private report fields are written
        self._dtls: Any = transceiver.sender.transport  # its SRTP session encrypts
        _private(self._sender, "RTCRtpSender", "packet_count")  # fail early, not per packet
        self._connection = connection  # aioice's: its nominated pair is where we send
        self._codec = codec
        self._spawn = spawn
        self._timeline: Timeline | None = None  # made once the sender runs
        self._payload_types: dict[str, int] = {}  # codec name -> our payload type
        self._codec_names: dict[int, str] = {}  # and back
        self._header_bits = 0x80
        self._extension = b""  # our header extension block (the MID), as aiortc sends it
        self._filling: asyncio.Task[None] | None = None
        self.last_relayed = 0.0  # time.monotonic() of the last packet relayed
        self.sent = 0
        self.silent = 0  # frames of silence sent in a quiet source's place
        self.dropped = 0  # not sent: not connected yet, or a codec we do not send
        self.closed = False
        # What aiortc's sender sends itself goes on the same timeline (see the module doc):
        # its sequence numbers are a local of aiortc's, so its packets are rewritten on the way
        send_rtp = getattr(self._dtls, _SEND_RTP, None)
        if not callable(send_rtp):
            raise HookMissing("aiortc's RTCDtlsTransport has no _send_rtp: the exchange cannot "
                              "keep what it sends on one timeline (relay.py)")
        self._send_rtp: Callable[[bytes], Coroutine[Any, Any, None]] = send_rtp
        setattr(self._dtls, _SEND_RTP, self._send_own)  # noqa: B010 (a method, replaced)

    async def _send_own(self, data: bytes) -> None:
        """A packet of aiortc's on its way to SRTP: RTP placed on our timeline; a sender
        report given our newest timestamp (aiortc's is of its own timeline); other RTCP as
        it is."""
        if len(data) >= 12 and not 192 <= data[1] <= 208:  # RFC 5761 4
            data = self._place_own(data)
        elif len(data) >= 20 and data[1] == 200 and self._timeline is not None:  # RFC 3550 6.4.1
            data = data[:16] + _TIMESTAMP.pack(self._timeline.ts) + data[20:]
        await self._send_rtp(data)

    def _place_own(self, data: bytes) -> bytes:
        timeline = self._timeline or self._ready()
        if timeline is None:
            return data
        _, second, seq, ts, ssrc = HEADER.unpack_from(data)
        ticks = CLOCK_RATE.get(self._codec_names.get(second & 0x7F), 48_000) // 50
        seq, ts = timeline.place(ssrc, seq, ts, ticks)
        return data[:2] + _PLACE.pack(seq, ts) + data[8:]

    def start(self) -> None:
        """A source forwards to this leg from now on: fill when it goes quiet."""
        self.last_relayed = time.monotonic()
        if self._filling is None and not self.closed:
            self._filling = self._spawn(self._fill())

    def stop(self) -> None:
        """This leg no longer forwards (its audio is decoded into it instead)."""
        if self._filling is not None:
            self._filling.cancel()
            self._filling = None

    def close(self) -> None:
        self.closed = True
        self.stop()

    def send(self, codec: str, view: RtpView, plain: bytes) -> None:
        """Send the packet ``plain`` (of ``codec``, read as ``view``) as ours."""
        timeline = self._timeline or self._ready()
        pt = self._payload_types.get(codec)
        if timeline is None or pt is None:
            self.dropped += 1
            return
        seq, ts = timeline.place(view.ssrc, view.sequence_number, view.timestamp,
                                 CLOCK_RATE.get(codec, 48_000) // 50)
        self.last_relayed = time.monotonic()
        self._emit(pt | view.marker, seq, ts, plain[view.start:view.end])

    def _emit(self, second: int, seq: int, ts: int, payload: bytes) -> None:
        srtp = self._dtls._tx_srtp
        pair = self._connection._nominated.get(1)
        if self.closed or srtp is None or pair is None or pair.protocol.transport is None:
            self.dropped += 1
            return
        packet = (HEADER.pack(self._header_bits, second, seq, ts, self._sender._ssrc)
                  + self._extension + payload)
        pair.protocol.transport.sendto(srtp.protect(packet), pair.remote_addr)
        count_sent(self._sender, ts, len(payload))  # what its next RTCP sender report says
        self.sent += 1

    def _ready(self) -> Timeline | None:
        """Once the sender runs (DTLS connected, negotiated): what every packet needs."""
        sender = self._sender
        if sender.transport._tx_srtp is None or not _private(sender, "RTCRtpSender",
                                                             "started"):
            return None
        self._payload_types = {c.name.lower(): c.payloadType for c in self._transceiver._codecs
                               if c.payloadType is not None}
        self._codec_names = {pt: name for name, pt in self._payload_types.items()}
        self._header_bits, self._extension = header_start(sender)
        self._timeline = Timeline(*_last_sent(sender))
        return self._timeline

    async def _fill(self) -> None:
        """A frame of silence every 20 ms while the source is quiet (FILL_AFTER)."""
        while True:
            quiet = time.monotonic() - self.last_relayed
            if quiet < FILL_AFTER:
                await asyncio.sleep(FILL_AFTER - quiet)
                continue
            codec = self._codec()
            timeline = self._timeline or self._ready()
            pt = self._payload_types.get(codec or "")
            if codec in SILENCE_CODECS and timeline is not None and pt is not None:
                assert codec is not None
                seq, ts = timeline.fill(CLOCK_RATE[codec] // 50)
                self.silent += 1
                try:
                    self._emit(pt, seq, ts, silence_payload(codec))
                except Exception as exc:  # the fill goes on while the leg lives
                    self.dropped += 1
                    log.debug("relay: cannot send silence: %s", type(exc).__name__)
            await asyncio.sleep(FILL_EVERY)


def _last_sent(sender: Any) -> tuple[int | None, int | None]:
    """The sequence number and timestamp aiortc's sender sent last (None, None: nothing yet),
    so that forwarding goes on from them. aiortc keeps its sequence number in a local; the
    retransmission history (one run of consecutive numbers) ends with it."""
    history: dict[int, Any] = _private(sender, "RTCRtpSender", "rtp_history")
    numbers = {p.sequence_number for p in history.values()}
    last = next((n for n in numbers if (n + 1) & 0xFFFF not in numbers), None)
    if last is None:
        return None, None
    return last, _private(sender, "RTCRtpSender", "rtp_timestamp")


class RelayIn:
    """Takes one leg's received RTP off aiortc's path and hands it to a RelayOut."""

    def __init__(self, transceiver: aiortc.RTCRtpTransceiver, connection: Any) -> None:
        self._receiver: Any = transceiver.receiver
        self._dtls: Any = transceiver.receiver.transport  # its SRTP session decrypts
        self._codecs: dict[int, Any] = _private(self._receiver, "RTCRtpReceiver", "codecs")
        self._names: dict[int, tuple[str, int]] = {}  # payload type -> (codec, clock rate)
        self._streams: dict[int, StreamStatistics] = _private(
            self._receiver, "RTCRtpReceiver", "remote_streams")
        self._connection = connection
        self.target: RelayOut | None = None
        self.packets = 0  # relayed or not: what arrived
        self.bytes = 0  # of payload
        self.dropped = 0  # undecryptable, malformed, of a payload type not negotiated...
        self.failed = 0  # ... or that the other leg could not send (logged once)

    def start(self, target: RelayOut) -> None:
        self.target = target
        target.start()
        set_rtp_relay(self._connection, self)

    def stop(self) -> None:
        set_rtp_relay(self._connection, None)
        self.target = None

    def __call__(self, data: bytes) -> bool:
        """A datagram from the leg's ICE peer: True when it was taken (SRTP), False to let
        aiortc have it (DTLS, SRTCP, or SRTP before the keys are known)."""
        if not 127 < data[0] < 192 or (len(data) > 1 and 192 <= data[1] <= 208):
            return False  # not RTP (RFC 7983, RFC 5761 4)
        srtp = self._dtls._rx_srtp
        if srtp is None:
            return False
        try:
            plain = srtp.unprotect(data)
        except pylibsrtp.Error:
            self.dropped += 1
            return True
        view = parse(plain)
        codec = self._codec(view.payload_type) if view is not None else None
        if view is None or codec is None:
            self.dropped += 1
            return True
        stats = self._streams.get(view.ssrc)
        if stats is None:  # the receiver's RTCP reports and stats are made from these
            if len(self._streams) >= MAX_SOURCES:
                self.dropped += 1
                return True
            stats = self._streams[view.ssrc] = StreamStatistics(codec[1])
        self.packets += 1
        self.bytes += view.end - view.start
        stats.add(cast(Any, view))  # it reads sequence_number and timestamp
        if self.target is not None:
            try:
                self.target.send(codec[0], view, plain)
            except Exception as exc:  # raised into aioice's datagram_received, it would close
                self.dropped += 1  # the leg's socket: a packet we cannot send is dropped
                if not self.failed:
                    log.warning("relay: cannot send a packet on: %s: %s",
                                type(exc).__name__, str(exc)[:200])
                self.failed += 1
        return True

    def _codec(self, payload_type: int) -> tuple[str, int] | None:
        """(name, clock rate) of a negotiated payload type (aiortc's codec works its name
        out of the MIME type at each read)."""
        known = self._names.get(payload_type)
        if known is None:
            codec = self._codecs.get(payload_type)
            if codec is None:
                return None
            known = self._names[payload_type] = (codec.name.lower(), codec.clockRate)
        return known
