"""The exchange forwards encoded audio between legs of the same codec, bit for bit, at the
SRTP level (voice/rtc/relay.py), with each leg's RTCP intact."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket, is_rtcp

from ..conftest import until
from .helpers import hears, place_and_answer

pytestmark = pytest.mark.net


@pytest.fixture
def rtp_log(monkeypatch) -> dict[int, list[tuple[int, bytes]]]:
    """Every RTP packet each receiver aiortc's path handled: id(receiver) -> [(seq, payload)]."""
    log: dict[int, list[tuple[int, bytes]]] = {}
    handle = RTCRtpReceiver._handle_rtp_packet

    async def recording(self, packet, arrival_time_ms):
        log.setdefault(id(self), []).append((packet.sequence_number, bytes(packet.payload)))
        return await handle(self, packet, arrival_time_ms)

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", recording)
    return log


@pytest.fixture
def sent_log(monkeypatch) -> dict[int, list[tuple[int, bytes]]]:
    """Every RTP packet aiortc sent, before encryption: id(DTLS transport) -> [(seq, payload)]."""
    log: dict[int, list[tuple[int, bytes]]] = {}
    send = RTCDtlsTransport._send_rtp

    async def recording(self, data):
        if not is_rtcp(data):
            packet = RtpPacket.parse(data)
            log.setdefault(id(self), []).append((packet.sequence_number, packet.payload))
        return await send(self, data)

    monkeypatch.setattr(RTCDtlsTransport, "_send_rtp", recording)
    return log


def receiver_of(pc) -> RTCRtpReceiver:
    return pc.getTransceivers()[0].receiver


def transport_of(pc) -> RTCDtlsTransport:
    return pc.getTransceivers()[0].sender.transport


async def test_same_codec_is_relayed_bit_exact_in_sequence_off_aiortcs_path(
        make_phone, exchange, rtp_log, sent_log):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880)
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    (call,) = exchange.calls.calls
    caller_leg, callee_leg = call.caller.media.leg, call.callee.media.leg  # bridge.Legs
    assert caller_leg.outbox.forwarding and callee_leg.outbox.forwarding
    assert outgoing.codec == incoming.codec == "opus"
    await hears(bob, 440)
    await hears(alice, 880)
    at_bob = rtp_log[id(receiver_of(incoming._media.pc))]  # exchange -> bob
    seen = len(at_bob)
    await until(lambda: len(at_bob) >= seen + 50, what="50 more packets at bob")
    sent = [payload for _, payload in sent_log[id(transport_of(outgoing._media.pc))]]
    received = [payload for _, payload in at_bob[seen:]]
    # Every payload bob got is one alice sent, unchanged and in order.
    start = sent.index(received[0])
    assert received[:40] == sent[start:start + 40]
    # Each leg numbers its own packets: the same payload travels under another sequence...
    pairs = {payload: seq for seq, payload in sent_log[id(transport_of(outgoing._media.pc))]}
    assert sum(pairs[p] == seq for seq, p in at_bob[seen:seen + 40]) < 3
    # ... with no gap or jump in what bob got.
    numbers = [seq for seq, _ in at_bob]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(numbers, numbers[1:], strict=False))
    # The exchange's aiortc receivers saw none of it once the legs were bridged: relayed.
    relay_in = caller_leg.media._relay_in
    assert relay_in is not None and relay_in.packets >= 50 and relay_in.dropped == 0
    assert callee_leg.outbox.relay is not None and callee_leg.outbox.relay.sent >= 50
    exchange_got = len(rtp_log.get(id(receiver_of(caller_leg.media.pc)), []))
    await until(lambda: relay_in.packets >= 100, what="50 more relayed")
    assert len(rtp_log.get(id(receiver_of(caller_leg.media.pc)), [])) == exchange_got


async def test_relayed_legs_keep_rtcp_reports_both_ways(make_phone, exchange):
    """Receiver and sender reports still flow on each leg: the clients' RTT, loss, jitter and
    one-way-audio figures, and the exchange's per-leg quality, come from them."""
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880)
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    (call,) = exchange.calls.calls
    caller_leg, callee_leg = call.caller.media.leg, call.callee.media.leg
    await hears(bob, 440)

    async def reported() -> bool:
        figures = [await outgoing._media.counters(), await incoming._media.counters(),
                   await caller_leg.media.counters(), await callee_leg.media.counters()]
        return all(c.rtt is not None and c.far_received is not None and c.jitter is not None
                   and c.packets_received > 50 for c in figures)

    for _ in range(80):  # RTCP comes every 0.5-1.5 s; an RTT needs a report each way
        if await reported():
            break
        await asyncio.sleep(0.1)
    assert await reported()
    at_bob = await incoming._media.counters()
    at_exchange = await caller_leg.media.counters()
    assert at_bob.packets_lost == 0 and at_exchange.packets_lost == 0
    assert at_exchange.bytes_received > 50 * 20  # the leg's quality counts relayed payload
    assert at_bob.jitter is not None and at_bob.jitter < 20


async def test_different_codecs_are_transcoded_and_carry_the_tone(make_phone, exchange):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880, codec_preferences=("pcmu",))
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    (call,) = exchange.calls.calls
    assert outgoing.codec == "opus" and incoming.codec == "pcmu"
    assert not any(leg.media.leg.outbox.forwarding for leg in (call.caller, call.callee))
    # What alice's Opus leg sends comes from bob's G.711: coded narrowband (encoding.py).
    assert call.caller.media.leg.outbox.narrowband
    assert not call.callee.media.leg.outbox.narrowband
    await hears(bob, 440)
    await hears(alice, 880)
