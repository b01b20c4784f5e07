"""Three-way conference through the real exchange (piphone's ``conference`` frame,
exchange/conference.py, voice/rtc/mixing.py): three Devices, each sending a tone of its own
frequency; once joined, each hears the other two and not itself (the spectrum of what it
receives, with numpy). When one leaves, the other two talk on, bridged."""

from __future__ import annotations

import asyncio

import pytest

from piphone.voice import CallStatus

from ..conftest import until
from .helpers import Events, hears, place_and_answer, strengths

pytestmark = pytest.mark.net

ALICE, BOB, CAROL = 500.0, 700.0, 1100.0


def hears_only(phone, wanted: tuple[float, ...], unwanted: float) -> bool:
    found = strengths(phone, (*wanted, unwanted))
    return all(found[f] > 0.3 for f in wanted) and found[unwanted] < 0.05


async def test_each_of_three_hears_the_other_two(make_phone):
    alice = await make_phone("alice", tone=ALICE)
    bob = await make_phone("bob", tone=BOB)
    carol = await make_phone("carol", tone=CAROL)
    to_bob, at_bob, out_bob, _ = await place_and_answer(alice, bob)
    to_bob.hold()
    to_carol, at_carol, _, _ = await place_and_answer(alice, carol)
    await hears(carol, ALICE)
    to_carol.transfer(joining=to_bob, conference=True)
    await out_bob.wait("disconnect")  # alice's call to bob ends: bob is in carol's call now
    for phone, others, own in ((alice, (BOB, CAROL), ALICE), (bob, (ALICE, CAROL), BOB),
                               (carol, (ALICE, BOB), CAROL)):
        await until(lambda p=phone, o=others, s=own: hears_only(p, o, s), 10,
                    what=f"{phone.device.identity} hears {others} "
                         f"({strengths(phone, (*others, own))})")
    assert at_bob.status() is at_carol.status() is to_carol.status() is CallStatus.OPEN
    # carol leaves: alice and bob talk on, bridged again
    at_carol.disconnect()
    await hears(alice, BOB, timeout=10)
    await hears(bob, ALICE, timeout=10)
    assert to_carol.status() is at_bob.status() is CallStatus.OPEN


async def test_a_conference_needs_two_calls_of_the_requester(make_phone):
    alice = await make_phone("alice", tone=ALICE)
    bob = await make_phone("bob", tone=BOB)
    mallory = await make_phone("mallory", tone=CAROL)
    to_bob, at_bob, _, _ = await place_and_answer(alice, bob)
    to_mallory, _, _, _ = await place_and_answer(mallory, await make_phone("dave"))
    errors = Events(to_mallory, names=("error",))
    # mallory names alice's call (its CallSid is no secret): it is not hers
    to_mallory.transfer(joining=to_bob, conference=True)
    (error,) = await errors.wait("error")
    assert error.code == 31000
    await hears(bob, ALICE)
    assert to_bob.status() is CallStatus.OPEN


async def _conference(alice, bob, carol):
    """alice calls bob, holds, calls carol, and joins them: a conference of three (bob is
    the guest of alice's call to carol). Returns (to_carol, at_bob, at_carol) once each hears
    the other two. alice's call to carol lasts until the relay sent carol more packets than
    SRTP's replay window: the mix the exchange then sends carol must go on after them."""
    to_bob, at_bob, out_bob, _ = await place_and_answer(alice, bob)
    to_bob.hold()
    to_carol, at_carol, _, _ = await place_and_answer(alice, carol)
    await hears(carol, ALICE)
    await asyncio.wait_for(carol.recorder.wait_for_frames(200), 10)
    trouble = [Events(call, names=("reconnecting",)) for call in (to_carol, at_carol, at_bob)]
    to_carol.transfer(joining=to_bob, conference=True)
    await out_bob.wait("disconnect")
    for phone, others, own in ((alice, (BOB, CAROL), ALICE), (bob, (ALICE, CAROL), BOB),
                               (carol, (ALICE, BOB), CAROL)):
        await until(lambda p=phone, o=others, s=own: hears_only(p, o, s), 10,
                    what=f"{phone.device.identity} hears {others} "
                         f"({strengths(phone, (*others, own))})")
    assert not any(events.log for events in trouble)  # the mix came at once, no media lost
    return to_carol, at_bob, at_carol


@pytest.mark.parametrize("cut", ["carol", "bob"])  # the call's callee, or its guest
async def test_a_member_cut_off_past_its_grace_leaves_and_the_others_talk_on(
        make_phone, netfault, exchange, cut):
    """A member whose signaling and media are gone for longer than the exchange's reconnect
    grace (0.5 s here) leaves the conference, as if it had hung up: the other two are bridged
    and talk on, as at a PBX (it does not end the call for them)."""
    behind = {"signaling_url": netfault.url}
    alice = await make_phone("alice", tone=ALICE)
    bob = await make_phone("bob", tone=BOB, **(behind if cut == "bob" else {}))
    carol = await make_phone("carol", tone=CAROL, **(behind if cut == "carol" else {}))
    to_carol, at_bob, at_carol = await _conference(alice, bob, carol)
    stays, gone = (bob, CAROL) if cut == "carol" else (carol, BOB)
    stays_call = at_bob if cut == "carol" else at_carol
    stays_events = Events(stays_call)
    out = Events(to_carol)
    netfault.block()  # the member's signaling and media are cut, for good
    netfault.media.set(blackhole=True)
    (call,) = exchange.calls.calls
    await until(lambda: len(call.parties()) == 2, 5, what="the cut member left")
    assert exchange.calls.calls == {call}
    await until(lambda: hears_only(alice, (stays.tone,), gone), 10,
                what=f"alice hears {stays.tone} ({strengths(alice, (stays.tone, gone))})")
    await until(lambda: hears_only(stays, (ALICE,), gone), 10,
                what=f"the other hears alice ({strengths(stays, (ALICE, gone))})")
    assert to_carol.status() is stays_call.status() is CallStatus.OPEN
    assert "disconnect" not in out.names() + stays_events.names()
