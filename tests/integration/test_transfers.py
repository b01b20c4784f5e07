"""Transfers through the real exchange (piphone's ``transfer`` frame, exchange/transfers.py),
between real Devices with tones: after a transfer, the far party and the target hear each
other, and the party that transferred is hung up."""

from __future__ import annotations

import asyncio

import pytest

from piphone.pcm import RINGBACK_FREQUENCIES
from piphone.voice import CallStatus

from ..conftest import until
from .helpers import Events, hears, place_and_answer, strengths

pytestmark = pytest.mark.net


async def test_blind_transfer_bridges_the_far_party_to_the_target(make_phone):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=600)
    carol = await make_phone("carol", tone=800)
    to_bob, at_bob, out, inc = await place_and_answer(alice, bob)
    await hears(bob, 440)
    to_bob.transfer("client:carol")
    await out.wait("disconnect")  # alice is hung up at once
    at_carol = await carol.next_call()
    assert at_carol.parameters["From"] == "client:bob"
    await asyncio.wait_for(at_carol.accept(), 5)
    await hears(bob, 800, timeout=10)
    await hears(carol, 600, timeout=10)
    assert at_bob.status() is CallStatus.OPEN and inc.names() == ["accept"]  # bob saw nothing
    at_bob.disconnect()
    await until(lambda: at_carol.status() is CallStatus.CLOSED, what="carol hung up")


async def test_the_party_handed_on_hears_ringback_until_the_target_answers(make_phone):
    """As from a PBX: while carol rings, bob hears ringback (played by the exchange into his
    leg, not silence); once she answers, carol and no more ringback."""
    alice = await make_phone("alice", tone=1000)
    bob = await make_phone("bob", tone=600)
    carol = await make_phone("carol", tone=800)
    to_bob, at_bob, out, _ = await place_and_answer(alice, bob)
    await hears(bob, 1000)
    # a call long enough for the relay to send more than SRTP's replay window (128 packets)
    # to bob: what the exchange sends itself afterwards must go on after it, not behind
    await asyncio.wait_for(bob.recorder.wait_for_frames(200), 10)
    trouble = Events(at_bob, names=("reconnecting", "disconnect"))
    to_bob.transfer("client:carol")
    at_carol = await carol.next_call()  # carol rings
    low, high = RINGBACK_FREQUENCIES

    def hearing(wanted: tuple[float, ...], unwanted: tuple[float, ...]) -> bool:
        found = strengths(bob, (*wanted, *unwanted))
        return all(found[f] > 0.3 for f in wanted) and all(found[f] < 0.05 for f in unwanted)

    # within its first 2 s burst, which starts at the transfer
    await until(lambda: hearing((low, high), (1000.0, 800.0)), 3,
                what=f"ringback at bob ({strengths(bob, (low, high, 1000.0, 800.0))})")
    assert at_carol.status() is CallStatus.PENDING  # still ringing
    await asyncio.wait_for(at_carol.accept(), 5)
    await until(lambda: hearing((800.0,), (low, high)), 10,
                what=f"carol, not ringback, at bob ({strengths(bob, (low, high, 800.0))})")
    await hears(carol, 600, timeout=10)
    assert at_bob.status() is CallStatus.OPEN
    assert not trouble.log  # bob's media never stopped: no restart, no hangup


async def test_attended_transfer_joins_the_held_party_and_the_consultation(make_phone):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=600)
    carol = await make_phone("carol", tone=800)
    to_bob, at_bob, out_bob, _ = await place_and_answer(alice, bob)
    to_bob.hold()  # a held call leaves the device free to place the consultation
    to_carol, at_carol, out_carol, _ = await place_and_answer(alice, carol)
    await hears(carol, 440)
    to_carol.transfer(joining=to_bob)
    await out_bob.wait("disconnect")
    await out_carol.wait("disconnect")
    await hears(bob, 800, timeout=10)
    await hears(carol, 600, timeout=10)
    assert at_bob.status() is at_carol.status() is CallStatus.OPEN


async def test_a_refused_transfer_is_an_error_and_the_call_goes_on(make_phone):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=600)
    to_bob, at_bob, out, _ = await place_and_answer(alice, bob)
    errors = Events(to_bob, names=("error",))
    to_bob.transfer("client:nobody")
    (error,) = await errors.wait("error")
    assert error.code == 31480
    assert to_bob.status() is CallStatus.OPEN
    await hears(bob, 440)
    await hears(alice, 600)


async def test_a_transfer_to_a_phone_of_another_codec_is_transcoded_both_ways(make_phone):
    """bob's leg forwarded Opus to alice's; carol takes only PCMU, so the exchange now decodes
    between them: bob's leg must send what is decoded for it, not wait for forwarded frames."""
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=600)
    carol = await make_phone("carol", tone=800, codec_preferences=("pcmu",))
    to_bob, at_bob, out, _ = await place_and_answer(alice, bob)
    assert to_bob.codec == at_bob.codec == "opus"
    await hears(bob, 440)
    to_bob.transfer("carol")
    at_carol = await carol.next_call()
    await asyncio.wait_for(at_carol.accept(), 5)
    assert at_carol.codec == "pcmu"
    await hears(carol, 600, timeout=10)
    await hears(bob, 800, timeout=10)
