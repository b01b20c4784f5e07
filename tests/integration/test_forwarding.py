"""The exchange forwards encoded audio between legs of the same codec, bit for bit."""

from __future__ import annotations

import pytest
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from ..conftest import until
from .helpers import hears, place_and_answer

pytestmark = pytest.mark.net


@pytest.fixture
def rtp_log(monkeypatch) -> dict[int, list[tuple[int, bytes]]]:
    """Every RTP packet each receiver handled: id(receiver) -> [(sequence, payload)]."""
    log: dict[int, list[tuple[int, bytes]]] = {}
    handle = RTCRtpReceiver._handle_rtp_packet

    async def recording(self, packet, arrival_time_ms):
        log.setdefault(id(self), []).append((packet.sequence_number, bytes(packet.payload)))
        return await handle(self, packet, arrival_time_ms)

    monkeypatch.setattr(RTCRtpReceiver, "_handle_rtp_packet", recording)
    return log


def receiver_of(pc) -> RTCRtpReceiver:
    return pc.getTransceivers()[0].receiver


async def test_same_codec_is_forwarded_bit_exact_with_fresh_sequence_numbers(
        make_phone, exchange, rtp_log):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880)
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    (call,) = exchange.calls.calls
    caller_leg, callee_leg = call.caller.media.leg, call.callee.media.leg  # bridge.Legs
    assert caller_leg.outbox.forwarding and callee_leg.outbox.forwarding
    assert outgoing.codec == incoming.codec == "opus"
    await hears(bob, 440)
    await hears(alice, 880)
    at_exchange = rtp_log[id(receiver_of(caller_leg.media.pc))]  # alice -> exchange
    at_bob = rtp_log[id(receiver_of(incoming._media.pc))]  # exchange -> bob
    await until(lambda: len(at_bob) >= 50, what="50 packets at bob")
    sent = [payload for _, payload in at_exchange]
    received = [payload for _, payload in at_bob]
    # Every payload bob got is one alice sent, unchanged and in order.
    start = sent.index(received[0])
    assert received[:40] == sent[start:start + 40]
    # Each leg numbers its own packets: the same payload travels under another sequence.
    pairs = {payload: seq for seq, payload in at_exchange}
    assert sum(pairs[p] == seq for seq, p in at_bob[:40]) < 3


async def test_different_codecs_are_transcoded_and_carry_the_tone(make_phone, exchange):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880, codec_preferences=("pcmu",))
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    (call,) = exchange.calls.calls
    assert outgoing.codec == "opus" and incoming.codec == "pcmu"
    assert not any(leg.media.leg.outbox.forwarding for leg in (call.caller, call.callee))
    await hears(bob, 440)
    await hears(alice, 880)
