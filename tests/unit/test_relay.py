"""The exchange's SRTP-level forwarding (voice/rtc/relay.py): header parsing, the sending leg's
timeline, and a packet's way from one leg's SRTP session to another's, with real SRTP."""

from __future__ import annotations

import asyncio
import os
import struct
from types import SimpleNamespace

import pylibsrtp
import pytest
from aiortc import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from piphone.voice.rtc import relay
from piphone.voice.rtc.forwarding import silence_payload
from piphone.voice.rtc.relay import RelayIn, RelayOut, Timeline, parse

MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
OPUS_IN, EVENT_IN, OPUS_OUT, EVENT_OUT = 111, 101, 96, 126


def rtp(pt: int, seq: int, ts: int, payload: bytes, *, ssrc: int = 1234, marker: bool = False,
        csrcs: int = 0, extension: bytes = b"", padding: int = 0) -> bytes:
    first = 0x80 | csrcs | (0x10 if extension else 0) | (0x20 if padding else 0)
    header = struct.pack("!BBHII", first, pt | (0x80 if marker else 0), seq, ts, ssrc)
    header += b"\0\0\0\1" * csrcs
    if extension:
        header += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    tail = b"\0" * (padding - 1) + bytes([padding]) if padding else b""
    return header + payload + tail


# --- parse ------------------------------------------------------------------------------
def test_parse_finds_the_payload_past_csrcs_extension_and_padding():
    packet = rtp(111, 65535, 2**32 - 1, b"voice", marker=True, csrcs=2,
                 extension=b"\x10\x30\0\0", padding=3)
    view = parse(packet)
    assert view is not None
    assert (view.payload_type, view.marker, view.sequence_number, view.timestamp,
            view.ssrc) == (111, 0x80, 65535, 2**32 - 1, 1234)
    assert packet[view.start:view.end] == b"voice"


@pytest.mark.parametrize("packet", [
    b"\x80\x6f\0\1",  # shorter than the fixed header
    b"\x40" + rtp(111, 1, 1, b"x")[1:],  # version 1
    rtp(111, 1, 1, b"")[:12].replace(b"\x80", b"\x83", 1),  # CSRCs past the end
    b"\x90" + rtp(111, 1, 1, b"")[1:12] + b"\xbe\xde\0\x09",  # extension past the end
    rtp(111, 1, 1, b"ab", padding=1)[:-1] + b"\0",  # padding of 0
    rtp(111, 1, 1, b"ab", padding=1)[:-1] + b"\x40",  # more padding than packet
])
def test_parse_refuses_what_is_not_well_formed(packet):
    assert parse(packet) is None


# --- the timeline ---------------------------------------------------------------------------
def test_timeline_goes_on_from_what_was_sent_and_keeps_the_sources_gaps():
    line = Timeline(seq=65534, ts=2**32 - 960)
    assert line.place(7, 100, 5000, 960) == (65535, 0)  # the next frame after ours
    assert line.place(7, 101, 5960, 960) == (0, 960)  # wraps
    assert line.place(7, 104, 8840, 960) == (3, 3840)  # a loss stays a gap
    assert line.place(7, 103, 7880, 960) == (2, 2880)  # late: placed where it was
    assert (line.seq, line.ts) == (3, 3840)  # the newest stays the newest
    assert line.place(7, 105, 9800, 960) == (4, 4800)


def test_timeline_carries_on_by_one_frame_for_a_new_source_a_jump_or_after_a_fill():
    line = Timeline(seq=10, ts=1000)
    line.place(1, 500, 77, 960)
    assert (line.seq, line.ts) == (11, 1960)
    assert line.place(2, 9, 123456, 960) == (12, 2920)  # another SSRC: a leg that restarted
    assert line.place(2, 9 + relay.MAX_STEP + 1, 0, 960) == (13, 3880)  # a jump
    assert line.place(2, 9 + relay.MAX_STEP - 200, 0, 960) == (14, 4840)  # far behind: anew
    assert line.fill(960) == (15, 5800)
    assert line.fill(960) == (16, 6760)
    assert line.place(2, 9 + relay.MAX_STEP - 199, 960, 960) == (17, 7720)  # after the fill


# --- a packet's way, with real SRTP sessions ---------------------------------------------------
def srtp_pair() -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    """(protect, unprotect) sessions sharing one key."""
    key = os.urandom(30)
    out = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    inp = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    return out, inp


def codec(name: str, pt: int, rate: int) -> RTCRtpCodecParameters:
    return RTCRtpCodecParameters(mimeType=f"audio/{name}", clockRate=rate, payloadType=pt)


class Wire:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))


class Legs:
    """Leg A's receiving side and leg B's sending side, as aiortc objects look to the relay."""

    def __init__(self, spawn=None) -> None:
        a_protect, self.a_rx = srtp_pair()  # what alice's client encrypts with
        self.alice = a_protect
        b_tx, self.bob = srtp_pair()  # what bob's client decrypts with
        receiver = SimpleNamespace(
            transport=SimpleNamespace(_rx_srtp=self.a_rx),
            _RTCRtpReceiver__codecs={OPUS_IN: codec("opus", OPUS_IN, 48000),
                                     EVENT_IN: codec("telephone-event", EVENT_IN, 48000)},
            _RTCRtpReceiver__remote_streams={})
        self.in_connection = SimpleNamespace()
        self.relay_in = RelayIn(SimpleNamespace(receiver=receiver), self.in_connection)
        self.streams = receiver._RTCRtpReceiver__remote_streams
        self.extensions = HeaderExtensionsMap()
        self.extensions.configure(RTCRtpParameters(
            headerExtensions=[RTCRtpHeaderExtensionParameters(id=3, uri=MID_URI)]))
        self.own: list[bytes] = []  # what aiortc's sender sent itself, as it reached SRTP

        async def send_rtp(data: bytes) -> None:
            self.own.append(data)

        self.sender = SimpleNamespace(
            _ssrc=0xB0B, transport=SimpleNamespace(_tx_srtp=b_tx, _send_rtp=send_rtp,
                                                   _rtp_header_extensions_map=self.extensions),
            _RTCRtpSender__started=True, _RTCRtpSender__mid="0", _RTCRtpSender__rtp_history={},
            _RTCRtpSender__ntp_timestamp=0, _RTCRtpSender__rtp_timestamp=0,
            _RTCRtpSender__octet_count=0, _RTCRtpSender__packet_count=0)
        self.wire = Wire()
        pair = SimpleNamespace(protocol=SimpleNamespace(transport=self.wire),
                               remote_addr=("192.0.2.7", 4000))
        transceiver = SimpleNamespace(sender=self.sender, _codecs=[
            codec("opus", OPUS_OUT, 48000), codec("telephone-event", EVENT_OUT, 48000)])
        self.relay_out = RelayOut(transceiver, SimpleNamespace(_nominated={1: pair}),
                                  lambda: "opus", spawn or (lambda coro: coro.close()))
        self.relay_in.start(self.relay_out)

    def from_alice(self, plain: bytes) -> bool:
        return self.relay_in(self.alice.protect(plain))

    def at_bob(self) -> list[RtpPacket]:
        return [RtpPacket.parse(self.bob.unprotect(data), self.extensions)
                for data, _ in self.wire.sent]


def test_a_packet_is_decrypted_rewritten_for_the_other_leg_and_encrypted_for_it():
    legs = Legs()
    assert legs.in_connection.piphone_rtp_relay is legs.relay_in  # hooked on A's ICE
    assert legs.from_alice(rtp(OPUS_IN, 500, 48000, b"opus-frame-1", marker=True,
                               extension=b"\x10\x30\0\0"))
    assert legs.from_alice(rtp(OPUS_IN, 501, 48960, b"opus-frame-2"))
    first, second = legs.at_bob()
    assert [p.payload for p in (first, second)] == [b"opus-frame-1", b"opus-frame-2"]
    assert {p.ssrc for p in (first, second)} == {0xB0B}  # bob's leg's own SSRC
    assert {p.payload_type for p in (first, second)} == {OPUS_OUT}
    assert (first.marker, second.marker) == (1, 0)
    assert (second.sequence_number - first.sequence_number) & 0xFFFF == 1
    assert (second.timestamp - first.timestamp) & 0xFFFFFFFF == 960
    assert first.extensions.mid == "0"  # bob's MID, not alice's extensions
    assert {addr for _, addr in legs.wire.sent} == {("192.0.2.7", 4000)}
    # What aiortc's RTCP is made of: the sender report's counts, the receiver's statistics.
    assert legs.sender._RTCRtpSender__packet_count == 2
    assert legs.sender._RTCRtpSender__octet_count == 24
    assert legs.sender._RTCRtpSender__rtp_timestamp == second.timestamp
    assert legs.sender._RTCRtpSender__ntp_timestamp > 0
    stats = legs.streams[1234]
    assert stats.packets_received == 2 and stats.max_seq == 501
    assert (legs.relay_in.packets, legs.relay_in.bytes) == (2, 24)


def test_telephone_events_are_relayed_under_the_other_legs_payload_type():
    legs = Legs()
    event = bytes([5, 0x8A, 0, 160])  # RFC 4733: digit 5, end, volume 10, duration 160
    assert legs.from_alice(rtp(OPUS_IN, 1, 0, b"opus"))
    assert legs.from_alice(rtp(EVENT_IN, 2, 960, event, marker=True))
    voice, digit = legs.at_bob()
    assert (digit.payload_type, digit.payload, digit.marker) == (EVENT_OUT, event, 1)
    assert voice.payload_type == OPUS_OUT


def test_what_is_not_relayable_rtp_is_dropped_or_left_to_aiortc():
    legs = Legs()
    assert legs.from_alice(rtp(0, 1, 0, b"pcmu, never negotiated"))  # taken, dropped
    assert legs.relay_in(b"\x80\x6f" + os.urandom(40))  # not decryptable: dropped
    assert legs.from_alice(rtp(OPUS_IN, 2, 0, b"ab", padding=1)[:-1] + b"\x40")  # malformed
    assert legs.relay_in.dropped == 3 and legs.wire.sent == []
    assert legs.relay_in(b"\x80\xc8" + bytes(30)) is False  # SRTCP: aiortc's
    assert legs.relay_in(b"\x16\xfe\xfd" + bytes(30)) is False  # DTLS: aiortc's
    legs.relay_in._dtls._rx_srtp = None  # keys not known yet: aiortc's
    assert legs.relay_in(legs.alice.protect(rtp(OPUS_IN, 3, 0, b"x"))) is False
    legs.relay_in.stop()
    assert legs.in_connection.piphone_rtp_relay is None


def test_nothing_is_sent_before_the_leg_is_connected_or_after_it_closed():
    legs = Legs()
    legs.sender.transport._tx_srtp = None  # DTLS not done (the relay reads it at each packet)
    assert legs.from_alice(rtp(OPUS_IN, 1, 0, b"early"))
    assert legs.wire.sent == [] and legs.relay_out.dropped == 1
    legs2 = Legs()
    legs2.relay_out.close()
    assert legs2.from_alice(rtp(OPUS_IN, 1, 0, b"late"))
    assert legs2.wire.sent == [] and legs2.relay_out.dropped == 1


def test_forwarding_goes_on_from_the_last_packet_aiortcs_sender_sent():
    legs = Legs()
    history = {n % 128: SimpleNamespace(sequence_number=n) for n in range(65500, 65536 + 20)}
    history.update({n % 128: SimpleNamespace(sequence_number=n & 0xFFFF)
                    for n in range(65536, 65536 + 20)})
    legs.sender._RTCRtpSender__rtp_history = history  # aiortc sent up to 19 (wrapped)
    legs.sender._RTCRtpSender__rtp_timestamp = 777
    legs.from_alice(rtp(OPUS_IN, 9000, 123, b"x"))
    (packet,) = legs.at_bob()
    assert (packet.sequence_number, packet.timestamp) == (20, 777 + 960)


async def test_what_aiortcs_sender_sends_itself_goes_on_the_same_timeline():
    """Audio decoded or played into the leg (a conference, a ringback) is sent by aiortc's
    sender, whose sequence numbers fell behind while the relay sent: the far end's SRTP replay
    check would drop them. They are placed after the relayed ones, and the next relayed after
    them; RTCP passes untouched."""
    legs = Legs()
    send = legs.sender.transport._send_rtp  # what the relay put in aiortc's path
    await send(rtp(OPUS_OUT, 7, 5000, b"own-1", ssrc=0xB0B))  # silence before the bridge
    for n in range(300):  # more than SRTP's replay window, relayed
        legs.from_alice(rtp(OPUS_IN, 1000 + n, 960 * n, b"fwd"))
    await send(rtp(OPUS_OUT, 8, 5960, b"own-2", ssrc=0xB0B))  # aiortc's next: seq 8
    await send(rtp(OPUS_OUT, 9, 6920, b"own-3", ssrc=0xB0B))
    legs.from_alice(rtp(OPUS_IN, 5000, 10**6, b"fwd-again"))  # bridged again
    receiver_report = b"\x80\xc9\x00\x01" + bytes(4)
    await send(receiver_report)
    await send(b"\x80\xc8\x00\x06" + bytes(24))  # aiortc's sender report: its timestamp
    first, *own = (RtpPacket.parse(data) for data in legs.own[:3])
    relayed = legs.at_bob()
    seqs = [first.sequence_number] + [p.sequence_number for p in relayed[:300]] \
        + [p.sequence_number for p in own] + [relayed[300].sequence_number]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    stamps = [p.timestamp for p in (relayed[299], *own, relayed[300])]
    assert all((b - a) & 0xFFFFFFFF == 960 for a, b in zip(stamps, stamps[1:], strict=False))
    assert [p.payload for p in own] == [b"own-2", b"own-3"]
    assert legs.own[3] == receiver_report
    sender_report = legs.own[4]
    assert struct.unpack_from("!I", sender_report, 16)[0] == relayed[300].timestamp
    assert sender_report[:16] == b"\x80\xc8\x00\x06" + bytes(12)


async def test_a_quiet_source_is_filled_with_silence_and_resumes_in_sequence(monkeypatch):
    monkeypatch.setattr(relay, "FILL_AFTER", 0.05)
    tasks: list[asyncio.Task[None]] = []
    legs = Legs(spawn=lambda coro: tasks.append(asyncio.ensure_future(coro)) or tasks[-1])
    try:
        legs.from_alice(rtp(OPUS_IN, 40, 0, b"voice"))
        for _ in range(100):
            if legs.relay_out.silent >= 3:
                break
            await asyncio.sleep(0.01)
        legs.from_alice(rtp(OPUS_IN, 41, 960, b"voice again"))
        packets = legs.at_bob()
        assert packets[1].payload == silence_payload("opus")
        assert packets[-1].payload == b"voice again" and len(packets) >= 5
        numbers = [p.sequence_number for p in packets]
        assert all((b - a) & 0xFFFF == 1 for a, b in zip(numbers, numbers[1:], strict=False))
        stamps = [p.timestamp for p in packets]
        assert all((b - a) & 0xFFFFFFFF == 960 for a, b in zip(stamps, stamps[1:], strict=False))
    finally:
        legs.relay_out.close()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert all(t.done() for t in tasks)


def test_a_client_making_up_sources_cannot_grow_the_legs_statistics():
    legs = Legs()
    for ssrc in range(1, 50):
        legs.from_alice(rtp(OPUS_IN, ssrc, ssrc * 960, b"x", ssrc=ssrc))
    assert len(legs.streams) == relay.MAX_SOURCES
    assert legs.relay_in.dropped == 49 - relay.MAX_SOURCES
    assert len(legs.wire.sent) == relay.MAX_SOURCES


def test_a_packet_the_other_leg_cannot_send_is_dropped_not_raised(caplog):
    """Raised into aioice's datagram_received, an error would close the leg's socket."""
    legs = Legs()

    class Broken:
        def protect(self, packet: bytes) -> bytes:
            raise pylibsrtp.Error("too long")

    legs.sender.transport._tx_srtp = Broken()
    assert legs.from_alice(rtp(OPUS_IN, 1, 0, b"x"))
    assert legs.from_alice(rtp(OPUS_IN, 2, 960, b"y"))
    assert (legs.relay_in.dropped, legs.relay_in.failed) == (2, 2)
    assert caplog.text.count("cannot send a packet on") == 1
