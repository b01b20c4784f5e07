"""exchange/transfers.py behind the call layer's interfaces (the rig of test_exchange_calls):
blind and attended transfers, and the checks a lying client meets."""

from __future__ import annotations

import pytest

from piphone.exchange.legs import Phase
from piphone.pcm import Ringback

from . import test_exchange_calls
from .test_exchange_calls import Party, answered, frame, invite, settled

table = test_exchange_calls.table  # the call layer with fake parties and media (a fixture)


def errors(party: Party) -> list[tuple[int, str | None]]:
    return [(p["error"]["code"], p.get("callsid")) for p in party.got("error")]


async def test_a_blind_transfer_rings_the_target_and_bridges_the_far_party(table):
    alice, bob, call = await answered(table)
    carol = Party("carol")
    table.registrations.add("carol", carol)
    bob_sid = bob.got("invite")[0]["callsid"]
    far = call.callee
    table.handle(alice, frame("transfer", callsid=call.sid, to="client:carol"))
    assert alice.got("hangup") == [{"callsid": call.sid}]  # alice leaves at once
    assert not bob.got("hangup")  # bob stays, his call goes on under his own CallSid
    (new,) = table.calls
    await settled(lambda: new.phase is Phase.RINGING, "carol rings")
    (ring,) = carol.got("invite")
    assert ring["parameters"]["From"] == "client:bob"
    assert new.caller is far and far.call is new and new.phase is Phase.RINGING
    ((to, source, ringback),) = table.fake_media.played  # bob hears ringback meanwhile
    assert to is far.media and isinstance(source, Ringback) and not ringback.stopped
    table.handle(carol, frame("answer", callsid=ring["callsid"], sdp="carol answer"))
    await settled(lambda: table.fake_media.joined[-1] == (far.media, new.callee.media),
                  "bob bridged to carol")
    assert ringback.stopped and new.ringback is None
    assert new.phase is Phase.ANSWERED and not bob.got("answer")[1:]
    # bob hangs up with the CallSid he always had: carol is told
    table.handle(bob, frame("hangup", callsid=bob_sid))
    assert carol.got("hangup") == [{"callsid": ring["callsid"]}]
    assert not table.calls and not len(table.legs)


async def test_an_attended_transfer_joins_the_held_party_to_the_consultation(table):
    alice, bob, first = await answered(table)
    carol = Party("carol")
    table.registrations.add("carol", carol)
    table.handle(alice, invite("TJSc", "carol"))
    await settled(lambda: len(alice.got("ringing")) == 2, "carol rings")
    table.handle(carol, frame("answer", callsid=carol.got("invite")[0]["callsid"], sdp="a"))
    await settled(lambda: len(table.fake_media.joined) == 2, "the consultation is up")
    second = next(c for c in table.calls if c is not first)
    bob_leg, carol_leg = first.callee, second.callee
    table.handle(alice, frame("transfer", callsid=first.sid, **{"with": second.sid}))
    assert sorted(p["callsid"] for p in alice.got("hangup")) == sorted([first.sid, second.sid])
    assert table.calls == {second} and second.caller is bob_leg and bob_leg.call is second
    assert table.fake_media.joined[-1] == (bob_leg.media, carol_leg.media)
    assert not bob.got("hangup") and not carol.got("hangup")
    table.handle(carol, frame("hangup", callsid=carol_leg.sid))
    assert bob.got("hangup") == [{"callsid": bob_leg.sid}]
    assert not table.calls


async def test_a_transfer_of_a_call_the_requester_is_not_in_is_refused(table):
    alice, bob, call = await answered(table)
    mallory, carol = Party("mallory"), Party("carol")
    table.registrations.add("carol", carol)
    # mallory knows the CallSid (both ids of the call), but neither is hers
    table.handle(mallory, frame("transfer", callsid=call.sid, to="carol"))
    table.handle(mallory, frame("transfer", callsid=call.callee.id, to="carol"))
    assert errors(mallory) == [(31000, call.sid), (31000, call.callee.id)]
    # nor can alice name mallory's... or any call not hers as the consultation
    table.handle(alice, frame("transfer", callsid=call.sid, **{"with": "CA" + "1" * 32}))
    assert errors(alice) == [(31000, call.sid)]
    assert table.calls == {call} and call.phase is Phase.ANSWERED
    assert not carol.got("invite") and not alice.got("hangup") and not bob.got("hangup")


async def test_a_transfer_to_nowhere_or_to_itself_changes_nothing(table):
    alice, bob, call = await answered(table)
    table.handle(alice, frame("transfer", callsid=call.sid, to="nobody"))  # not registered
    table.handle(alice, frame("transfer", callsid=call.sid, to="+15550000"))  # no route
    table.handle(alice, frame("transfer", callsid=call.sid, to="bob"))  # the far party
    table.handle(alice, frame("transfer", callsid=call.sid))  # neither to nor with
    assert [code for code, _ in errors(alice)] == [31480, 31404, 31404, 31100]
    assert table.calls == {call} and call.phase is Phase.ANSWERED and not alice.got("hangup")


async def test_transfers_a_minute_are_limited(table):
    alice, bob, call = await answered(table)
    for _ in range(table.transfers.per_minute + 1):
        table.handle(alice, frame("transfer", callsid=call.sid, to="nobody"))
    codes = [code for code, _ in errors(alice)]
    assert codes[:-1] == [31480] * table.transfers.per_minute and codes[-1] == 31206


async def test_a_call_still_ringing_cannot_be_transferred(table):
    alice, carol = Party("alice"), Party("carol")
    table.registrations.add("carol", carol)
    table.handle(alice, invite("TJSa", "carol"))
    await settled(lambda: alice.got("ringing"), "carol rings")
    (call,) = table.calls
    table.handle(alice, frame("transfer", callsid=call.sid, to="carol"))
    assert errors(alice) == [(31000, call.sid)]


async def test_no_answer_to_a_blind_transfer_hangs_the_far_party_up(table):
    alice, bob, call = await answered(table)
    carol = Party("carol")
    table.registrations.add("carol", carol)
    table.handle(alice, frame("transfer", callsid=call.sid, to="carol"))
    (new,) = table.calls
    await settled(lambda: new.phase is Phase.RINGING, "carol rings")
    table.handle(carol, frame("reject", callsid=carol.got("invite")[0]["callsid"]))
    (hangup,) = bob.got("hangup")
    assert hangup["error"]["code"] == 31603 and not table.calls
    ((_, _, ringback),) = table.fake_media.played
    assert ringback.stopped


async def two_calls(table):
    """alice talks to bob (held at her end) and to carol: (alice, bob, carol, first, second)."""
    alice, bob, first = await answered(table)
    carol = Party("carol")
    table.registrations.add("carol", carol)
    table.handle(alice, invite("TJSc", "carol"))
    await settled(lambda: len(alice.got("ringing")) == 2, "carol rings")
    table.handle(carol, frame("answer", callsid=carol.got("invite")[0]["callsid"], sdp="a"))
    await settled(lambda: len(table.fake_media.joined) == 2, "the second call is up")
    second = next(c for c in table.calls if c is not first)
    return alice, bob, carol, first, second


async def test_a_conference_mixes_the_three_and_a_leaver_leaves_two_bridged(table):
    alice, bob, carol, first, second = await two_calls(table)
    bob_leg, alice_leg, carol_leg = first.callee, second.caller, second.callee
    table.handle(alice, frame("conference", callsid=second.sid, **{"with": first.sid}))
    assert alice.got("hangup") == [{"callsid": first.sid}]  # her call to bob ends
    assert table.calls == {second} and second.guests == [bob_leg] and bob_leg.call is second
    assert second.mixer.members == [[alice_leg.media, carol_leg.media, bob_leg.media]]
    assert not bob.got("hangup") and not carol.got("hangup")
    # carol hangs up: alice and bob talk on, bridged, the mixer stopped
    table.handle(carol, frame("hangup", callsid=carol_leg.sid))
    assert table.fake_media.joined[-1] == (alice_leg.media, bob_leg.media)
    assert second.mixer is None
    assert second.parties() == [alice_leg, bob_leg] and not alice.got("hangup")[1:]
    table.handle(bob, frame("hangup", callsid=bob_leg.sid))
    assert alice.got("hangup")[1:] == [{"callsid": alice_leg.sid}] and not table.calls


async def test_a_member_hanging_up_a_conference_of_three_leaves_the_others_mixed(table):
    alice, bob, carol, first, second = await two_calls(table)
    bob_leg, alice_leg, carol_leg = first.callee, second.caller, second.callee
    table.handle(alice, frame("conference", callsid=second.sid, **{"with": first.sid}))
    mixer = second.mixer
    table.handle(alice, frame("hangup", callsid=alice_leg.sid))  # she set it up and leaves
    assert mixer.stopped and not carol.got("hangup") and not bob.got("hangup")
    assert second.parties() == [carol_leg, bob_leg]
    assert table.fake_media.joined[-1] == (carol_leg.media, bob_leg.media)


async def test_a_conference_is_refused_for_calls_not_the_requesters_and_is_not_joined_again(
        table):
    alice, bob, carol, first, second = await two_calls(table)
    bob_leg = first.callee
    mallory = Party("mallory")
    table.handle(mallory, frame("conference", callsid=second.sid, **{"with": first.sid}))
    assert errors(mallory) == [(31000, second.sid)]
    table.handle(alice, frame("conference", callsid=second.sid, **{"with": second.sid}))
    assert errors(alice) == [(31000, second.sid)]  # the same call twice
    table.handle(alice, frame("conference", callsid=second.sid, **{"with": first.sid}))
    # a conference is no longer a two-party call: it cannot be transferred or joined again
    table.handle(alice, frame("transfer", callsid=second.sid, to="dave"))
    table.handle(bob, frame("conference", callsid=bob_leg.sid, **{"with": second.sid}))
    assert errors(alice)[1:] == [(31000, second.sid)]
    assert [code for code, _ in errors(bob)] == [31000]
    assert len(second.parties()) == 3


async def test_a_member_cut_off_that_hangs_up_from_a_new_socket_leaves_the_others_talking(
        table):
    alice, bob, carol, first, second = await two_calls(table)
    bob_leg, alice_leg, carol_leg = first.callee, second.caller, second.callee
    table.handle(alice, frame("conference", callsid=second.sid, **{"with": first.sid}))
    table.session_closed(carol)  # her socket is gone (her leg waits out its grace) ...
    table.handle(Party("carol"), frame("hangup", callsid=carol_leg.id))  # ... she hangs up
    assert second.parties() == [alice_leg, bob_leg] and second.mixer is None
    assert table.fake_media.joined[-1] == (alice_leg.media, bob_leg.media)
    assert not bob.got("hangup") and second in table.calls


@pytest.mark.parametrize("how", ["grace over", "restarted media never connected"])
async def test_a_member_gone_leaves_the_conference_and_the_others_are_bridged(table, how):
    alice, bob, carol, first, second = await two_calls(table)
    bob_leg, alice_leg, carol_leg = first.callee, second.caller, second.callee
    table.handle(alice, frame("conference", callsid=second.sid, **{"with": first.sid}))
    mixer = second.mixer
    if how == "grace over":
        table.session_closed(carol)
        table.book._grace_over(carol_leg)  # the grace timer's call, without its 30 s
    else:
        carol_leg.media.connected = False
        table.book._media_check(carol_leg, carol_leg.media, 30.0)  # the media timer's call
    assert mixer.stopped and second.parties() == [alice_leg, bob_leg]
    assert table.fake_media.joined[-1] == (alice_leg.media, bob_leg.media)
    assert not bob.got("hangup") and second in table.calls
    await settled(lambda: carol_leg.media.closed, "carol's media closed")
    # a party of a two-party call gone the same way still ends it
    table.session_closed(bob)
    table.book._grace_over(bob_leg)
    assert alice.got("hangup")[-1] == {"callsid": alice_leg.sid} and not table.calls
