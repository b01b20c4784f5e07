"""The lean RTP sender (voice/rtc/sending.py) puts on the wire what aiortc's own loop would:
the same header, byte for byte as aiortc serializes it, and the counts its RTCP sender
reports and getStats read. A real aiortc sender on a DTLS transport whose ``_send_rtp`` is
replaced by a list (nothing leaves the process)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport, RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import (
    RTCRtcpParameters,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import RtpPacket, is_rtcp

from piphone.pcm import Tone
from piphone.voice.rtc import sending
from piphone.voice.rtc.encoding import EncodingTrack
from piphone.voice.rtc.tracks import as_track

from ..conftest import until

MID = "0"
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2,
                             payloadType=111)
PCMA = RTCRtpCodecParameters(mimeType="audio/PCMA", clockRate=8000, payloadType=8)
MID_EXTENSION = RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid")


class Wire:
    """A DTLS transport's ``_send_rtp``: keeps what would be encrypted and sent."""

    def __init__(self) -> None:
        self.rtp: list[bytes] = []

    async def __call__(self, data: bytes) -> None:
        if not is_rtcp(data):
            self.rtp.append(data)


def sender_on_wire(track: MediaStreamTrack) -> tuple[RTCRtpSender, RTCDtlsTransport, Wire]:
    dtls = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()),
                            [RTCCertificate.generateCertificate()])
    wire = Wire()
    dtls._send_rtp = wire  # type: ignore[method-assign]
    sender = RTCRtpSender(track, dtls)
    return sender, dtls, wire


def parameters(codec: RTCRtpCodecParameters) -> RTCRtpSendParameters:
    return RTCRtpSendParameters(codecs=[codec], headerExtensions=[MID_EXTENSION], muxId=MID,
                                rtcp=RTCRtcpParameters(cname="piphone"))


async def test_packets_are_what_aiortc_would_send_and_counted_as_it_counts():
    track = EncodingTrack(as_track(Tone(440)), lambda: "opus")
    sender, dtls, wire = sender_on_wire(track)
    sending.lean_sender(sender)
    await sender.send(parameters(OPUS))
    await until(lambda: len(wire.rtp) >= 6, timeout=5, what="6 packets")
    await sender.stop()
    assert sender._RTCRtpSender__rtp_history == {}  # ours: aiortc's loop keeps every packet
    packets = [RtpPacket.parse(data, dtls._rtp_header_extensions_map) for data in wire.rtp]
    first = packets[0]
    for n, (data, packet) in enumerate(zip(wire.rtp, packets, strict=True)):
        assert packet.version == 2 and packet.payload_type == 111 and packet.marker == 1
        assert packet.ssrc == sender._ssrc and packet.extensions.mid == MID
        assert packet.sequence_number == (first.sequence_number + n) & 0xFFFF
        assert packet.timestamp == (first.timestamp + 960 * n) & 0xFFFFFFFF  # 20 ms frames
        assert 2 < len(packet.payload) < 200  # an Opus frame of a tone
        # aiortc's own serialization of the same packet is the same bytes
        assert packet.serialize(dtls._rtp_header_extensions_map) == data
    stats = await sender.getStats()
    outbound = next(s for s in stats.values() if s.type == "outbound-rtp")
    assert outbound.packetsSent == len(packets)
    assert outbound.bytesSent == sum(len(p.payload) for p in packets)
    # what the next RTCP sender report carries: the newest timestamp, and NTP time now
    assert sender._RTCRtpSender__rtp_timestamp == packets[-1].timestamp
    ntp_seconds = sender._RTCRtpSender__ntp_timestamp / (1 << 32) - sending.NTP_OFFSET
    assert abs(ntp_seconds - time.time()) < 2
    assert track.readyState == "ended"  # stopped with the sender, as aiortc's loop does


class Frames(MediaStreamTrack):
    """A few tone frames, then the end of the track."""

    kind = "audio"

    def __init__(self, count: int) -> None:
        super().__init__()
        self._tone = as_track(Tone(440))
        self._left = count

    async def recv(self):  # type: ignore[no-untyped-def]
        if self._left == 0:
            raise MediaStreamError
        self._left -= 1
        return await self._tone.recv()


async def test_a_codec_we_do_not_encode_goes_through_aiortcs_own_loop():
    track = Frames(4)
    sender, dtls, wire = sender_on_wire(track)
    sending.lean_sender(sender)
    await sender.send(parameters(PCMA))
    await until(lambda: len(wire.rtp) >= 3, timeout=5, what="3 PCMA packets")
    packets = [RtpPacket.parse(data, dtls._rtp_header_extensions_map) for data in wire.rtp]
    assert {p.payload_type for p in packets} == {8}  # aiortc encoded PCMA itself
    assert all(len(p.payload) == 160 for p in packets)
    assert sender._RTCRtpSender__rtp_history  # aiortc's loop keeps what it sent
    await sender.stop()


async def test_a_track_that_gives_frames_is_handed_to_aiortcs_loop():
    track = Frames(5)  # no EncodingTrack: frames, for the negotiated Opus
    sender, dtls, wire = sender_on_wire(track)
    sending.lean_sender(sender)
    await sender.send(parameters(OPUS))
    await until(lambda: len(wire.rtp) >= 3, timeout=5, what="3 Opus packets from aiortc")
    packets = [RtpPacket.parse(data, dtls._rtp_header_extensions_map) for data in wire.rtp]
    assert {p.payload_type for p in packets} == {111}
    assert sender._RTCRtpSender__rtp_history  # aiortc's loop sent them
    await sender.stop()


async def test_the_end_of_the_track_ends_the_loop_and_stop_returns():
    track = EncodingTrack(Frames(3), lambda: "opus")
    sender, _, wire = sender_on_wire(track)
    sending.lean_sender(sender)
    await sender.send(parameters(OPUS))
    await asyncio.wait_for(sender._RTCRtpSender__rtp_exited.wait(), 5)
    assert len(wire.rtp) == 3
    await asyncio.wait_for(sender.stop(), 5)


def test_problem_names_what_aiortc_no_longer_has(monkeypatch):
    assert sending.problem() is None  # the pinned aiortc
    monkeypatch.setattr(sending, "_SENDER_FIELDS", (*sending._SENDER_FIELDS, "gone_field"))
    problem = sending.problem()
    assert problem is not None and "gone_field" in problem


@pytest.mark.parametrize("missing", ["send", "_send_rtp"])
def test_problem_names_a_method_gone(monkeypatch, missing):
    import aiortc

    owner = aiortc.RTCRtpSender if missing == "send" else aiortc.RTCDtlsTransport
    monkeypatch.delattr(owner, missing)
    problem = sending.problem()
    assert problem is not None and missing.lstrip("_") in problem
