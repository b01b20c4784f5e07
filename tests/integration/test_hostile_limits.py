"""A client with a valid token tries to make the exchange hold calls for ever (issue 14): media
that never connects, calls that never end, every call slot, reinvite bursts, offers that cannot
be answered, devices that freeze while they ring. Each is bounded by a setting of [limits] or
by the ring timeout, and ends with the error Twilio's SDK knows."""

from __future__ import annotations

import asyncio
import logging

import pytest

from piphone.exchange.calls import MAX_DIGIT_RELAYS
from piphone.exchange.config import Limits
from piphone.voice import CallStatus
from piphone.voice.rtc import MediaSession, Outbox

from ..conftest import until
from .helpers import Events, hears, place_and_answer
from .hostile import Hostile, temp_id
from .leaks import open_peer_connections

pytestmark = pytest.mark.net


def limits(**changes) -> dict:
    return {"limits": Limits(**changes)}


def row_of(exchange, callsid: str):
    return exchange.records.log.get(exchange.records.log.find(callsid))


def exchange_side(exchange, client: Hostile):
    """The exchange's session of a hostile client's socket."""
    port = client.ws.local_address[1]
    (session,) = [s for s in exchange.sessions if s.ws.remote_address[1] == port]
    return session


# --- 3. Media that never connects, calls that never end --------------------------------------

@pytest.mark.parametrize("exchange_cfg", [limits(media_timeout=1.0)], indirect=True)
async def test_an_echo_call_whose_client_never_connects_media_ends_with_53405(
        leaks, hostile, exchange):
    mallory = await hostile()
    media = await mallory.invite(temp_id(), "echo")
    answer = await mallory.expect("answer")
    answered = asyncio.get_running_loop().time()
    await media.close()  # she never does ICE or DTLS
    hangup = await mallory.expect("hangup", answer["callsid"], timeout=4)
    waited = asyncio.get_running_loop().time() - answered
    assert hangup["error"]["code"] == 53405
    assert 0.8 <= waited < 2.5, waited
    assert not exchange.calls.calls
    row = row_of(exchange, answer["callsid"])
    assert row.outcome == "failed" and row.error.startswith("53405")
    await mallory.close()
    await leaks.shut_down_and_check([], None, exchange)


@pytest.mark.parametrize("exchange_cfg", [limits(media_timeout=1.0)], indirect=True)
async def test_a_callee_whose_media_never_connects_ends_the_call_with_53405(
        leaks, make_phone, hostile, exchange):
    alice = await make_phone("alice")
    bob = await hostile("bob")
    await bob.register()
    outgoing = await alice.device.connect({"To": "bob"})
    out = Events(outgoing)
    invite = await bob.expect("invite")
    media = await bob.answer(invite)
    await media.close()  # and never connects
    (error,) = await out.wait("error", timeout=4)
    assert error.code == 53405
    await out.wait("disconnect")
    hangup = await bob.expect("hangup", invite["callsid"])
    assert hangup["error"]["code"] == 53405
    assert not exchange.calls.calls
    await bob.close()
    await leaks.shut_down_and_check([alice], None, exchange)


@pytest.mark.parametrize("exchange_cfg", [{"reconnect_grace": 1.5, **limits(media_timeout=0.5)}],
                         indirect=True)
async def test_a_media_restart_that_never_connects_ends_the_call_after_the_grace(
        leaks, hostile, exchange):
    mallory = await hostile()
    call_sid, media = await mallory.answered_call(temp_id())
    _, sdp = await mallory.offer()  # a restart she never connects
    await mallory.send("reinvite", callsid=call_sid, sdp=sdp)
    await mallory.expect("answer", call_sid, count=2)
    restarted = asyncio.get_running_loop().time()
    hangup = await mallory.expect("hangup", call_sid, timeout=4)
    waited = asyncio.get_running_loop().time() - restarted
    assert hangup["error"]["code"] == 53405
    assert 1.3 <= waited < 3.0, waited  # the grace, not media_timeout: the SDK retries slowly
    assert not exchange.calls.calls
    await mallory.close()
    await leaks.shut_down_and_check([], None, exchange)


@pytest.mark.parametrize("exchange_cfg", [limits(media_timeout=0.5)], indirect=True)
async def test_a_call_whose_media_connects_outlives_the_media_timeout(leaks, make_phone,
                                                                      exchange):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=660)
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    await asyncio.sleep(1.0)
    await hears(alice, 660)
    await hears(bob, 440)
    assert out.names() == ["ringing", "accept"] and inc.names() == ["accept"]
    outgoing.disconnect()
    await inc.wait("disconnect")
    await leaks.shut_down_and_check([alice, bob], None, exchange)


@pytest.mark.parametrize("exchange_cfg", [limits(max_call_length=1.0)], indirect=True)
async def test_a_call_held_past_the_maximum_length_is_hung_up_with_the_reason(
        leaks, make_phone, exchange):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=660)
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    answered = asyncio.get_running_loop().time()
    call_sid = outgoing.sid
    for events in (out, inc):
        (error,) = await events.wait("error", timeout=3)
        assert error.code == 31005 and "maximum call length" in error.message
        await events.wait("disconnect")
    assert asyncio.get_running_loop().time() - answered >= 0.9
    assert outgoing.status() is CallStatus.CLOSED and incoming.status() is CallStatus.CLOSED
    row = row_of(exchange, call_sid)
    assert row.outcome == "completed" and "maximum call length" in row.error
    await leaks.shut_down_and_check([alice, bob], None, exchange)


# --- 4. One token holding every slot ----------------------------------------------------------

@pytest.mark.parametrize("exchange_cfg", [{"max_calls": 6, **limits(max_calls_per_identity=2)}],
                         indirect=True)
async def test_one_identity_cannot_hold_every_call_slot(leaks, make_phone, hostile, exchange):
    sockets = [await hostile() for _ in range(3)]
    replies = []
    for client in sockets:
        for _ in range(2):
            await client.invite(temp_id(), "echo")
            reply = await client.reply()
            replies.append((reply["type"], reply["payload"].get("error", {}).get("code")))
    assert replies.count(("answer", None)) == 2
    assert replies.count(("hangup", 31005)) == 4, replies
    # Everyone else still gets through, to a line and to mallory herself, who is busy.
    mallory_phone = await hostile()
    await mallory_phone.register()
    alice = await make_phone("alice")
    carol = await make_phone("carol")
    call = await alice.device.connect({"To": "echo"})
    events = Events(call)
    await events.wait("accept")
    to_mallory = await carol.device.connect({"To": "mallory"})
    refused = Events(to_mallory)
    (error,) = await refused.wait("error")
    assert error.code == 31486
    assert not mallory_phone.got("invite")
    call.disconnect()
    for client in (*sockets, mallory_phone):
        await client.close()
    await until(lambda: not exchange.calls.calls, 3, "every call to end")
    await leaks.shut_down_and_check([alice, carol], None, exchange)


async def test_a_flood_of_paused_digits_holds_a_bounded_number_of_relays(
        leaks, make_phone, hostile, exchange):
    alice = await make_phone("alice")
    mallory = await hostile()
    media = await mallory.invite(temp_id(), "alice")
    incoming = await alice.next_call()
    inc = Events(incoming)
    await incoming.accept()
    answer = await mallory.expect("answer")
    await media.apply_answer(answer["sdp"])
    # Each would sleep 500 ms per "w": 500 s of relays a frame. (Fewer frames than the
    # session's bad-frame and send-queue caps, which cut off a client sooner: their own tests.)
    flood = MAX_DIGIT_RELAYS + 12
    for _ in range(flood):
        await mallory.send("dtmf", callsid=answer["callsid"], dtmf="1" + "w" * 1000)
    await until(lambda: len(mallory.got("error")) >= flood - MAX_DIGIT_RELAYS, 3,
                "the digits beyond the bound refused")
    (call,) = exchange.calls.calls
    assert len(call.digits) <= MAX_DIGIT_RELAYS
    assert {e["error"]["code"] for e in mallory.got("error")} == {31005}
    await inc.wait("dtmf", count=MAX_DIGIT_RELAYS)
    await mallory.send("hangup", callsid=answer["callsid"])
    await inc.wait("disconnect")
    assert not call.digits  # the relays end with the call
    await mallory.close()
    await leaks.shut_down_and_check([alice], None, exchange)


# --- 5. Reinvites ----------------------------------------------------------------------------

async def test_a_burst_of_100_reinvites_is_taken_one_at_a_time(leaks, hostile, exchange,
                                                               caplog):
    mallory = await hostile()
    call_sid, media = await mallory.answered_call(temp_id())
    _, offer = await mallory.offer()
    theirs = {m.pc for m in mallory.media}
    for _ in range(100):
        await mallory.send("reinvite", callsid=call_sid, sdp=offer)

    def replies() -> int:  # the first answer is the call's own
        return len(mallory.got("answer", call_sid)) - 1 + len(mallory.got("error", call_sid))

    await until(lambda: replies() >= 100, 5, f"a reply to every reinvite ({replies()})")
    answered = len(mallory.got("answer", call_sid)) - 1
    assert answered <= 5, answered
    assert all(e["error"]["code"] == 31005 for e in mallory.got("error", call_sid))
    ours = [pc for pc in open_peer_connections() if pc not in theirs]
    assert len(ours) <= 1, ours  # the leg's current media only
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # The leg still takes a proper media restart.
    await asyncio.sleep(0.5)
    fresh, sdp = await mallory.offer()
    await mallory.send("reinvite", callsid=call_sid, sdp=sdp)
    answer = await mallory.expect("answer", call_sid, count=answered + 2)
    await fresh.apply_answer(answer["sdp"])
    await fresh.wait_connected(5)
    await mallory.send("hangup", callsid=call_sid)
    await until(lambda: not exchange.calls.calls, 3, "the call to end")
    await mallory.close()
    await leaks.shut_down_and_check([], None, exchange)


@pytest.mark.parametrize("exchange_cfg", [limits(reinvites_per_minute=3)], indirect=True)
async def test_reinvites_beyond_the_rate_are_refused_and_the_call_goes_on(leaks, hostile,
                                                                          exchange):
    mallory = await hostile()
    call_sid, media = await mallory.answered_call(temp_id())
    for n in range(3):
        fresh, sdp = await mallory.offer()
        await mallory.send("reinvite", callsid=call_sid, sdp=sdp)
        answer = await mallory.expect("answer", call_sid, count=n + 2)
        await fresh.apply_answer(answer["sdp"])
        await fresh.wait_connected(5)
    _, sdp = await mallory.offer()
    await mallory.send("reinvite", callsid=call_sid, sdp=sdp)
    refusal = await mallory.expect("error", call_sid)
    assert refusal["error"]["code"] == 31206 and "per minute" in refusal["error"]["message"]
    await asyncio.sleep(0.3)
    assert fresh.state == "connected" and len(exchange.calls.calls) == 1
    await mallory.send("hangup", callsid=call_sid)
    await until(lambda: not exchange.calls.calls, 3, "the call to end")
    await mallory.close()
    await leaks.shut_down_and_check([], None, exchange)


# --- 9. Calls that ring for ever -------------------------------------------------------------

@pytest.mark.parametrize("to", ["echo", "bob"])
async def test_an_offer_the_exchange_cannot_answer_ends_the_call_at_once(
        leaks, make_phone, hostile, exchange, monkeypatch, to):
    """aiortc takes an offer it then cannot answer (it raised ValueError for one without a
    direction line): the caller is not left ringing."""
    original = MediaSession.answer

    async def cannot(self, *args):
        if isinstance(self.source, Outbox):  # the exchange's answer, not bob's
            raise ValueError("None is not in list")
        return await original(self, *args)

    monkeypatch.setattr(MediaSession, "answer", cannot)
    bob = await make_phone("bob")
    mallory = await hostile()
    placed = asyncio.get_running_loop().time()
    await mallory.invite(temp_id(), to)
    if to == "bob":
        incoming = await bob.next_call()
        inc = Events(incoming)
        await incoming.accept()
        await inc.wait("disconnect")
    hangup = await mallory.expect("hangup", timeout=3)
    assert hangup["error"]["code"] == 31100
    assert asyncio.get_running_loop().time() - placed < 2  # at once, not at the ring timeout
    await until(lambda: not exchange.calls.calls, 2, "the call to end")
    await mallory.close()
    await leaks.shut_down_and_check([bob], None, exchange)


@pytest.mark.parametrize("exchange_cfg", [{"ring_timeout": 0.6}], indirect=True)
@pytest.mark.parametrize(("to", "code"), [("echo", 31480), ("bob", 31005)])
async def test_a_call_the_exchange_cannot_answer_in_time_ends_at_the_ring_timeout(
        leaks, make_phone, hostile, exchange, monkeypatch, to, code):
    """A service line, or a callee that answered: the exchange's own answer to the caller
    never comes (its gathering hangs, as with an ICE server that is gone)."""
    original = MediaSession.answer

    async def stuck(self, *args):
        if isinstance(self.source, Outbox):  # the exchange's, not bob's
            await asyncio.Event().wait()
        return await original(self, *args)

    monkeypatch.setattr(MediaSession, "answer", stuck)
    bob = await make_phone("bob")
    mallory = await hostile()
    placed = asyncio.get_running_loop().time()
    await mallory.invite(temp_id(), to)
    if to == "bob":
        incoming = await bob.next_call()
        inc = Events(incoming)
        await incoming.accept()
    hangup = await mallory.expect("hangup", timeout=3)
    assert hangup["error"]["code"] == code
    assert asyncio.get_running_loop().time() - placed >= 0.5
    if to == "bob":
        await inc.wait("disconnect")
    assert not exchange.calls.calls
    await mallory.close()
    await leaks.shut_down_and_check([bob], None, exchange)


# --- 10. Devices dropped while they ring -----------------------------------------------------

async def _drop(exchange, client: Hostile) -> None:
    """What the exchange does to a session that failed its liveness check."""
    exchange_side(exchange, client).ws.transport.abort()


async def test_a_ringing_device_dropped_for_liveness_ends_its_fork_and_tells_the_caller(
        leaks, make_phone, hostile, exchange):
    alice = await make_phone("alice")
    frozen = await hostile("bob")
    await frozen.register()
    outgoing = await alice.device.connect({"To": "bob"})
    out = Events(outgoing)
    await out.wait("ringing")
    await frozen.expect("invite")
    await _drop(exchange, frozen)
    (error,) = await out.wait("error", timeout=2)
    assert error.code == 31480
    await out.wait("disconnect")
    assert not exchange.calls.calls
    await frozen.close()
    await leaks.shut_down_and_check([alice], None, exchange)


class Gate:
    """Holds the exchange's ``n``-th offer to a device until opened (its invite is still being
    prepared)."""

    def __init__(self, monkeypatch, n: int) -> None:
        self.opened = asyncio.Event()
        self.held = asyncio.Event()
        original, calls = MediaSession.offer, []

        async def offer(session):
            if isinstance(session.source, Outbox):  # an offer of the exchange's
                calls.append(session)
            if len(calls) == n and calls[-1] is session:
                self.held.set()
                await self.opened.wait()
            return await original(session)

        monkeypatch.setattr(MediaSession, "offer", offer)


async def test_a_device_dropped_while_its_invite_is_prepared_is_not_rung(
        leaks, make_phone, hostile, exchange, monkeypatch):
    alice = await make_phone("alice")
    frozen = await hostile("bob")
    await frozen.register()
    gate = Gate(monkeypatch, 1)
    outgoing = await alice.device.connect({"To": "bob"})
    out = Events(outgoing)
    await asyncio.wait_for(gate.held.wait(), 3)
    await _drop(exchange, frozen)
    await until(lambda: exchange_side_gone(exchange, frozen), 2, "the session to close")
    gate.opened.set()
    (error,) = await out.wait("error", timeout=2)
    assert error.code == 31480
    await out.wait("disconnect")
    assert not exchange.calls.calls
    await frozen.close()
    await leaks.shut_down_and_check([alice], None, exchange)


async def test_a_device_dropped_while_another_is_prepared_leaves_the_call_ringing_there(
        leaks, make_phone, hostile, exchange, monkeypatch):
    alice = await make_phone("alice", tone=440)
    frozen = await hostile("bob")
    await frozen.register()
    bob = await make_phone("bob", tone=660)
    gate = Gate(monkeypatch, 2)  # the real bob's invite waits; the frozen one is rung
    outgoing = await alice.device.connect({"To": "bob"})
    out = Events(outgoing)
    await frozen.expect("invite")
    await asyncio.wait_for(gate.held.wait(), 3)
    await _drop(exchange, frozen)
    await until(lambda: exchange_side_gone(exchange, frozen), 2, "the session to close")
    gate.opened.set()
    await out.wait("ringing")
    incoming = await bob.next_call()
    await incoming.accept()
    await out.wait("accept")
    await hears(alice, 660)
    assert "error" not in out.names()
    outgoing.disconnect()
    await Events(incoming).wait("disconnect")
    await frozen.close()
    await leaks.shut_down_and_check([alice, bob], None, exchange)


async def test_hanging_up_while_the_devices_are_offered_the_call_leaves_no_leg(
        leaks, make_phone, hostile, exchange, monkeypatch):
    bob = await make_phone("bob")
    mallory = await hostile()
    gate = Gate(monkeypatch, 1)  # the exchange's offer to bob is under way
    callsid = temp_id()
    await mallory.invite(callsid, "bob")
    await asyncio.wait_for(gate.held.wait(), 3)
    await mallory.send("hangup", callsid=callsid)
    await until(lambda: not exchange.calls.calls, 2, "the call to end")
    theirs = {m.pc for m in mallory.media}
    await until(lambda: not [pc for pc in open_peer_connections() if pc not in theirs], 3,
                f"no peer connection left at the exchange ({open_peer_connections()})")
    assert bob.incoming.empty()
    await mallory.close()
    await leaks.shut_down_and_check([bob], None, exchange)


def exchange_side_gone(exchange, client: Hostile) -> bool:
    port = client.ws.local_address[1]
    return not [s for s in exchange.sessions if s.ws.remote_address[1] == port]
