"""A client with a valid token attacks the call legs of others and its own (issue 14): reused
CallSids, someone else's reconnect token, calls that fail half-way through placing or ending.
The exchange keys legs by its own ids, ends every leg with its call whatever the order of
events, and never lets one session touch another's legs."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from piphone.exchange import bridge
from piphone.voice import CallStatus
from piphone.voice.rtc import MediaSession

from ..conftest import until
from .helpers import Events, hears, place_and_answer
from .hostile import Hostile, temp_id
from .leaks import open_peer_connections
from .test_reconnect_signaling import RECONNECT_EVENTS

pytestmark = pytest.mark.net


def row_of(exchange, callsid: str):
    call_id = exchange.records.log.find(callsid)
    return None if call_id is None else exchange.records.log.get(call_id)


# --- 1. CallSid takeover ----------------------------------------------------------------------

async def test_inviting_with_another_partys_callsid_does_not_take_over_its_call(
        leaks, make_phone, hostile, exchange):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=660)
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    mallory = await hostile()
    # Mallory learnt both CallSids of the call and files calls of her own under them.
    for stolen in (outgoing.sid, incoming.sid):
        await mallory.invite(stolen, "echo")
        await mallory.reply()
    await hears(alice, 660)
    await hears(bob, 440)
    # The call log still files each CallSid under alice's call, not under mallory's.
    for sid in (outgoing.sid, incoming.sid):
        assert row_of(exchange, sid).identity == "alice"
    # Each victim's own hangup still reaches its call.
    outgoing.disconnect()
    await inc.wait("disconnect")
    assert incoming.status() is CallStatus.CLOSED
    assert all(c.caller.identity == "mallory" for c in exchange.calls.calls)
    await mallory.close()
    await until(lambda: not exchange.calls.calls, 3, "mallory's calls to end")
    await leaks.shut_down_and_check([alice, bob], None, exchange)


async def test_inviting_again_with_a_callsid_the_socket_has_in_use_is_refused(
        leaks, hostile, exchange):
    mallory = await hostile()
    first = temp_id()
    call_sid, media = await mallory.answered_call(first)
    for n, reused in enumerate((first, call_sid), 1):
        await mallory.invite(reused, "echo")
        refusal = await mallory.expect("error", count=n)
        assert refusal["error"]["code"] == 31100, refusal
    assert "in use" in mallory.got("error")[0]["error"]["message"]
    assert len(exchange.calls.calls) == 1 and not mallory.got("hangup")
    assert media.state == "connected"
    # The first call is untouched: her hangup by its temporary id still ends it.
    await mallory.send("hangup", callsid=first)
    await until(lambda: not exchange.calls.calls, 3, "the first call to end")
    await mallory.close()
    await leaks.shut_down_and_check([], None, exchange)


# --- 2. Legs left answered after every socket closed ------------------------------------------

async def test_twenty_rounds_of_callsid_reuse_leave_no_leg_behind(leaks, make_phone, hostile,
                                                                   exchange):
    grace = exchange.config.reconnect_grace
    for round_ in range(20):
        mallory = await hostile()
        first = temp_id()
        call_sid, media = await mallory.answered_call(first)
        # Reuse the temporary id, then the CallSid: in the old exchange, the first call's
        # leg was then under no key at all and outlived every socket.
        for reused in (first, call_sid):
            await mallory.invite(reused, "echo")
            await mallory.reply()
        await mallory.close()
        await until(lambda: not exchange.calls.calls, grace + 2,
                    f"round {round_}: every call to end ({exchange.calls.calls})")
        assert not len(exchange.calls.legs)
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=660)
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    await hears(alice, 660)
    outgoing.disconnect()
    await inc.wait("disconnect")
    await leaks.shut_down_and_check([alice, bob], None, exchange)


# --- 6. Resume without the right party --------------------------------------------------------

async def _resume(client: Hostile, callsid: str, token: str) -> dict:
    media, sdp = await client.offer()
    await client.send("invite", callsid=callsid, sdp=sdp, reconnect=token, preflight=False,
                      twilio={})
    return await client.expect("hangup", callsid)


@pytest.mark.parametrize("who", ["another identity", "the same identity"])
async def test_resuming_a_live_leg_with_its_token_from_another_socket_is_refused(
        leaks, make_phone, hostile, exchange, who):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=660)
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    out = Events(outgoing, RECONNECT_EVENTS)
    intruder = await hostile("mallory" if who == "another identity" else "alice")
    for sid, token in ((outgoing.sid, outgoing._reconnect_token),
                       (incoming.sid, incoming._reconnect_token)):
        refusal = await _resume(intruder, sid, token)
        assert refusal["error"]["code"] == 31209  # ReconnectAttemptError
    await hears(alice, 660)
    await hears(bob, 440)
    assert not intruder.got("answer")
    # The live legs are still alice's and bob's: alice's hangup ends the call for bob.
    outgoing.disconnect()
    await inc.wait("disconnect")
    assert out.names() == ["disconnect"]
    await intruder.close()
    await leaks.shut_down_and_check([alice, bob], None, exchange)


@pytest.mark.parametrize("exchange_cfg", [{"reconnect_grace": 10.0}], indirect=True)
async def test_resuming_a_cut_off_leg_from_another_identity_is_refused(
        leaks, make_phone, hostile, netfault, exchange):
    alice = await make_phone("alice", tone=440, signaling_url=netfault.url)
    bob = await make_phone("bob", tone=660)
    outgoing, incoming, _, inc = await place_and_answer(alice, bob)
    out = Events(outgoing, RECONNECT_EVENTS)
    netfault.block()  # alice's socket is gone: her leg waits in its grace
    await out.wait("reconnecting")
    mallory = await hostile()
    refusal = await _resume(mallory, outgoing.sid, outgoing._reconnect_token)
    assert refusal["error"]["code"] == 31209  # ReconnectAttemptError
    # Alice herself resumes it.
    netfault.restore()
    await out.wait("reconnected", timeout=5)
    await hears(alice, 660)
    await hears(bob, 440)
    outgoing.disconnect()
    await inc.wait("disconnect")
    await mallory.close()
    await leaks.shut_down_and_check([alice, bob], netfault, exchange)


# --- 7. Placing a call is all or nothing ------------------------------------------------------

async def test_an_invite_with_a_lone_surrogate_in_its_callsid_holds_nothing(
        leaks, make_phone, hostile, exchange):
    mallory = await hostile()
    await mallory.invite("TJS\ud800", "echo")
    reply = await mallory.reply()
    assert reply["type"] in ("error", "hangup"), reply
    # Nothing is held while her socket stays open: no call, no peer connection but her own.
    await until(lambda: not exchange.calls.calls, 2, "no call left")
    theirs = [m.pc for m in mallory.media]
    await until(lambda: not [pc for pc in open_peer_connections() if pc not in theirs], 2,
                "no peer connection left at the exchange")
    await mallory.close()
    alice = await make_phone("alice")
    call = await alice.device.connect({"To": "echo"})
    await Events(call).wait("accept")
    call.disconnect()
    await leaks.shut_down_and_check([alice], None, exchange)


@pytest.mark.parametrize(("failing", "code"), [("routing", 31000), ("call log", 31000),
                                              ("caller media", 31000), ("callee media", 31480)])
async def test_a_failure_while_placing_a_call_releases_everything_it_took(
        leaks, make_phone, hostile, exchange, monkeypatch, failing, code):
    bob = await make_phone("bob")
    mallory = await hostile()
    media, sdp = await mallory.offer()  # before anything breaks

    def fail(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    async def fail_async(*args, **kwargs):
        raise RuntimeError("aiortc failed")

    if failing == "routing":
        monkeypatch.setattr(exchange.dial_plan, "resolve", fail)
    elif failing == "call log":
        monkeypatch.setattr(exchange.records.log, "start", fail)
    else:
        name = "prepare_answer" if failing == "caller media" else "offer"
        monkeypatch.setattr(MediaSession, name, fail_async)
    callsid = temp_id()
    await mallory.invite(callsid, "bob", sdp=sdp)
    refusal = await mallory.expect("hangup", callsid)
    assert refusal["error"]["code"] == code
    monkeypatch.undo()
    assert bob.incoming.empty()
    await until(lambda: not exchange.calls.calls, 2, "no call left")
    await mallory.close()
    await until(lambda: not open_peer_connections(), 3,
                f"no peer connection left ({open_peer_connections()})")
    # The slot is free: a call goes through.
    alice = await make_phone("alice", tone=440)
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    outgoing.disconnect()
    await inc.wait("disconnect")
    await leaks.shut_down_and_check([alice, bob], None, exchange)


# --- 8. Ending a call whose media state cannot be read ----------------------------------------

async def test_hanging_up_a_call_with_a_malformed_connection_address_closes_its_legs(
        leaks, hostile, exchange):
    """Reading the codec of such a call made aiortc raise while the call ended, before its
    legs were dropped (where the media path refuses such an SDP at once, that is fine too)."""
    mallory = await hostile()
    media, sdp = await mallory.offer()
    bad = sdp.replace("c=IN IP4 127.0.0.1\r\n", "c=IN IP4 127.0.0.1:0\r\n")
    assert bad != sdp
    await mallory.invite(temp_id(), "echo", sdp=bad)
    reply = await mallory.reply()
    if reply["type"] == "answer":
        await mallory.send("hangup", callsid=reply["payload"]["callsid"])
        await until(lambda: not exchange.calls.calls, 2, "the call to end")
        await asyncio.sleep(0.2)
        assert not mallory.got("error") and not mallory.got("hangup"), mallory.frames
    else:
        assert reply["type"] == "hangup" and reply["payload"]["error"]["code"] == 31100, reply
    await until(lambda: not exchange.calls.calls, 2, "the call to end")
    await mallory.close()
    await until(lambda: not open_peer_connections(), 3,
                f"no peer connection left ({open_peer_connections()})")
    await leaks.shut_down_and_check([], None, exchange)


async def test_ending_a_call_whose_codec_cannot_be_read_still_closes_its_legs(
        leaks, make_phone, exchange, monkeypatch):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=660)
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    call_sid = outgoing.sid

    def unreadable(self):
        raise ValueError("aiortc could not re-serialise the SDP")

    monkeypatch.setattr(bridge.Leg, "codec", property(unreadable))
    outgoing.disconnect()
    await inc.wait("disconnect")
    assert "error" not in out.names() and "error" not in inc.names()
    await until(lambda: not exchange.calls.calls, 2, "the call to end")
    monkeypatch.undo()
    assert row_of(exchange, call_sid).outcome == "completed"
    await leaks.shut_down_and_check([alice, bob], None, exchange)
