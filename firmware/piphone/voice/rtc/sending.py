"""A call's audio packets sent without aiortc's per-packet objects.

aiortc's sender loop (``RTCRtpSender._run_rtp``) builds, for every 20 ms packet of audio we
already encoded (encoding.py), an ``RtpPacket`` with a header-extensions object, reads the
clock twice through ``datetime`` to make NTP time, converts the timestamp with ``Fraction``
arithmetic, keeps the packet for retransmission (which no one asks of audio: browsers and
Twilio NACK video only) and serializes it: in Python, per packet, more than the SRTP that
follows. ``lean_sender`` puts a loop of ours in its place for a call's sender: the same
header (payload type, marker, sequence number, timestamp, SSRC, the MID extension as aiortc
writes it) packed with ``struct``, sent through the DTLS transport's own ``_send_rtp`` (its
SRTP session, state checks and counters), and the fields aiortc's RTCP sender reports and
``getStats`` read kept up to date. The track, its encoder and everything before the packet
are unchanged; RTCP stays aiortc's.

Not used by the exchange: its legs switch between forwarding (relay.py, which places what
aiortc's own loop sends on the leg's timeline) and encoding, and keep aiortc's loop.
``problem()`` names what of aiortc this relies on; hooks.check() fails on it.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import random
import struct
import time
from typing import Any

import aiortc
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import HeaderExtensions
from av.packet import Packet

log = logging.getLogger(__name__)

HEADER = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence, timestamp, SSRC
EXTENSION = struct.Struct("!HH")  # profile, length in 32-bit words
NTP_OFFSET = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)
CODECS = ("opus", "pcmu")  # what encoding.VoiceEncoder makes: packets we send as they are
_P = "_RTCRtpSender__"  # aiortc's sender's private fields, as Python mangles them
# What aiortc's own loop reads and writes, which ours does too (problem() checks them)
_SENDER_FIELDS = ("rtp_started", "rtp_exited", "mid", "track", "encoder", "ntp_timestamp",
                  "rtp_timestamp", "octet_count", "packet_count")


def problem() -> str | None:
    """What of aiortc the lean sender relies on that is gone (None: nothing)."""
    send = getattr(aiortc.RTCRtpSender, "send", None)
    known = {name for method in ("__init__", "replaceTrack", "_run_rtp")
             for name in getattr(aiortc.RTCRtpSender, method).__code__.co_names}
    if send is None or "_run_rtp" not in send.__code__.co_names:
        return "aiortc's RTCRtpSender.send no longer starts _run_rtp: lean_sender cannot replace it"
    missing = [f for f in _SENDER_FIELDS if _P + f not in known]
    if missing:
        return f"aiortc's RTCRtpSender has no {missing}: lean_sender cannot stand in for its loop"
    if not asyncio.iscoroutinefunction(getattr(aiortc.RTCDtlsTransport, "_send_rtp", None)):
        return "aiortc's RTCDtlsTransport has no _send_rtp: lean_sender cannot send"
    return None


def lean_sender(sender: aiortc.RTCRtpSender) -> None:
    """Send ``sender``'s packets with our loop once it starts (see the module doc): the track
    must give encoded ``av.Packet``s of the negotiated codec (encoding.EncodingTrack)."""
    original = sender._run_rtp

    async def run_rtp(codec: RTCRtpCodecParameters) -> None:
        # a codec we do not encode, or a track that gives frames: aiortc's loop encodes them
        if codec.name.lower() not in CODECS or not await _run(sender, codec):
            await original(codec)

    sender._run_rtp = run_rtp  # type: ignore[method-assign]


def ntp_now() -> int:
    """The time as a 64-bit NTP timestamp (what aiortc's sender reports carry)."""
    return int((time.time() + NTP_OFFSET) * (1 << 32))


def header_start(sender: Any) -> tuple[int, bytes]:
    """The first byte of ``sender``'s RTP headers and their extension block: the MID, as
    aiortc writes it (also relay.py's, for the packets it sends as a leg's own)."""
    profile, value = sender.transport._rtp_header_extensions_map.set(
        HeaderExtensions(mid=getattr(sender, _P + "mid")))
    if not value:
        return 0x80, b""
    return 0x90, EXTENSION.pack(profile, len(value) // 4) + value


def count_sent(sender: Any, timestamp: int, payload_bytes: int) -> None:
    """A packet sent in ``sender``'s place, where aiortc's RTCP sender reports and getStats
    read it (also relay.py's)."""
    sender._RTCRtpSender__ntp_timestamp = ntp_now()
    sender._RTCRtpSender__rtp_timestamp = timestamp
    sender._RTCRtpSender__octet_count += payload_bytes
    sender._RTCRtpSender__packet_count += 1


async def _run(sender: Any, codec: RTCRtpCodecParameters) -> bool:
    """aiortc's _run_rtp for pre-encoded audio, written out (see the module doc). False, at
    once, if the track gives an unencoded frame: aiortc's own loop is to go on (that frame is
    lost); True once the loop ended as aiortc's ends."""
    assert codec.payloadType is not None  # negotiated: aiortc's send() starts us with it
    getattr(sender, _P + "rtp_started").set()
    sequence = random.getrandbits(16)
    origin = random.getrandbits(32)
    first, extension = header_start(sender)
    second = 0x80 | codec.payloadType  # aiortc marks the last packet of a frame: every one
    clock_base = fractions.Fraction(1, codec.clockRate)
    send_rtp = sender.transport._send_rtp
    try:
        while True:
            track = sender.track
            if track is None:
                await asyncio.sleep(0.02)
                continue
            data = await track.recv()
            if not sender._enabled:
                continue
            if not isinstance(data, Packet):
                log.info("the call's track gives %s, not packets: aiortc's loop sends",
                         type(data).__name__)
                return False
            pts = data.pts or 0
            if data.time_base != clock_base:  # never for VoiceEncoder's packets
                pts = round(pts * data.time_base / clock_base) if data.time_base else pts
            timestamp = (origin + pts) & 0xFFFFFFFF
            payload = bytes(data)
            await send_rtp(HEADER.pack(first, second, sequence, timestamp, sender._ssrc)
                           + extension + payload)
            count_sent(sender, timestamp, len(payload))
            sequence = (sequence + 1) & 0xFFFF
    except (asyncio.CancelledError, ConnectionError, MediaStreamError):
        pass
    except Exception:  # as aiortc's loop: RTCRtpSender.stop() waits for rtp_exited
        log.warning("sending RTP failed", exc_info=True)
    track = sender.track
    if track is not None:
        track.stop()
        setattr(sender, _P + "track", None)
    setattr(sender, _P + "encoder", None)
    getattr(sender, _P + "rtp_exited").set()
    return True
