"""Media through the exchange: mute, digits, codec negotiation."""

from __future__ import annotations

import asyncio

import pytest

from piphone.errors import InvalidArgumentError
from piphone.voice import CallStatus, TwilioError

from .helpers import Events, hears, hears_silence, place_and_answer

pytestmark = pytest.mark.net


async def test_mute_sends_silence_and_fires_once_per_change(make_phone):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880)
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    await hears(bob, 440)
    outgoing.mute(True)
    outgoing.mute(True)  # no change: no second event
    assert outgoing.is_muted()
    assert out.all("mute") == [(True, outgoing)]
    await hears_silence(bob)
    await hears(alice, 880)  # muting one way leaves the other way alone
    outgoing.mute(False)
    outgoing.mute(False)
    assert not outgoing.is_muted()
    assert out.all("mute") == [(True, outgoing), (False, outgoing)]
    await hears(bob, 440)
    # The callee mutes too: the caller hears silence, the callee's events are its own.
    incoming.mute()
    await hears_silence(alice)
    assert inc.all("mute") == [(True, incoming)]
    assert out.all("mute") == [(True, outgoing), (False, outgoing)]
    assert outgoing.status() is CallStatus.OPEN and incoming.status() is CallStatus.OPEN


async def test_accept_without_audio_starts_muted(make_phone):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880)
    outgoing = await alice.device.connect({"To": "bob"})
    out = Events(outgoing)
    incoming = await bob.next_call()
    await incoming.accept(rtc_constraints={"audio": False})
    await out.wait("accept")
    assert incoming.is_muted()
    await hears(bob, 440)
    await hears_silence(alice)


async def test_digits_arrive_in_groups_with_the_pause(make_phone):
    alice = await make_phone("alice")
    bob = await make_phone("bob")
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    sending = outgoing.send_digits("12w3#")
    await inc.wait("dtmf", count=2, timeout=3)
    await asyncio.wait_for(sending, 1)
    assert inc.all("dtmf") == [("12",), ("3#",)]
    first, second = inc.times("dtmf")
    assert 0.45 <= second - first < 1.0
    # And the other way, with * and a leading pause.
    incoming.send_digits("w*0")
    await out.wait("dtmf", timeout=3)
    assert out.all("dtmf") == [("*0",)]
    assert inc.all("dtmf") == [("12",), ("3#",)]  # nothing echoed back


@pytest.mark.parametrize("digits", ["12a", "1 2", "#p", "١", 12, None])
async def test_invalid_digits_raise_and_send_nothing(make_phone, wire, digits):
    alice = await make_phone("alice")
    bob = await make_phone("bob")
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    with pytest.raises(InvalidArgumentError):
        outgoing.send_digits(digits)
    outgoing.send_digits("5")
    await inc.wait("dtmf")
    assert inc.all("dtmf") == [("5",)]
    assert [p["dtmf"] for p in wire.got("alice", "dtmf")] == ["5"]


async def test_digits_need_an_open_call(make_phone):
    alice = await make_phone("alice")
    await make_phone("bob")
    outgoing = await alice.device.connect({"To": "bob"})
    with pytest.raises(TwilioError):
        outgoing.send_digits("1")
    outgoing.disconnect()


@pytest.mark.parametrize(("caller_codecs", "expected"),
                         [(("pcmu",), "pcmu"), (("opus", "pcmu"), "opus")])
async def test_codec_preference_is_negotiated_end_to_end(make_phone, caller_codecs, expected):
    alice = await make_phone("alice", tone=440, codec_preferences=caller_codecs)
    bob = await make_phone("bob", tone=880)  # default preferences: opus, pcmu
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    assert outgoing.codec == expected
    assert incoming.codec == expected
    await hears(bob, 440)
    await hears(alice, 880)


async def test_callee_codec_preference_applies_to_its_leg(make_phone):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880, codec_preferences=("pcmu",))
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    assert incoming.codec == "pcmu"
    await hears(bob, 440)
    await hears(alice, 880)
