"""The exchange's relay of call messages (exchange/messages.py) behind the call layer's
interfaces: who may send into which call, what reaches the far party (ids of the exchange's,
the protocol's fields only), and every bound a lying client meets (type, size, rate)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from piphone.exchange import config as exchange_config
from piphone.exchange import messages
from piphone.exchange.calls import CallTable
from piphone.exchange.records import CallRecords
from piphone.exchange.routing import DialPlan, Registrations
from piphone.voice import protocol

from . import test_exchange_calls as rig
from .test_exchange_calls import FakeMedia, Party, answered, frame, invite, settled

table = rig.table  # the call layer with fake parties and media (a fixture)

SID = "KX" + "a" * 32


def message(callsid: str, **fields) -> dict:
    return {"callsid": callsid, "content": {"volume": 7}, "contenttype": "application/json",
            "messagetype": "user-defined-message", "voiceeventsid": SID, **fields}


async def test_a_message_reaches_the_other_party_with_ids_of_the_exchange(table):
    alice, bob, call = await answered(table)
    bob_sid = call.callee.sid
    table.handle(alice, frame("message", **message(call.sid, sneaky="extra field")))
    (relayed,) = bob.got("message")
    assert relayed["callsid"] == bob_sid != call.sid
    assert re.fullmatch(r"KX[0-9a-f]{32}", relayed["voiceeventsid"]) and relayed[
        "voiceeventsid"] != SID
    assert {k: v for k, v in relayed.items() if k != "voiceeventsid"} == {
        "callsid": bob_sid, "content": {"volume": 7}, "contenttype": "application/json",
        "messagetype": "user-defined-message"}
    assert alice.got("ack") == [{"callsid": call.sid, "acktype": "message",
                                 "voiceeventsid": SID}]
    # And back: bob's message reaches alice under her CallSid; the ack is bob's alone.
    table.handle(bob, frame("message", **message(bob_sid, content="ok")))
    assert alice.got("message")[0]["callsid"] == call.sid
    assert alice.got("message")[0]["content"] == "ok" and len(alice.got("ack")) == 1
    assert bob.got("ack") == [{"callsid": bob_sid, "acktype": "message", "voiceeventsid": SID}]


async def test_only_a_party_of_the_call_can_send_into_it(table):
    alice, bob, call = await answered(table)
    mallory = Party("mallory")
    for callsid in (call.sid, call.callee.sid):  # she learnt both CallSids
        table.handle(mallory, frame("message", **message(callsid)))
    assert mallory.sent == [] and alice.got("message") == [] and bob.got("message") == []


def refusal(party: Party) -> dict:
    (error,) = party.got("error")
    assert error["voiceeventsid"] == SID
    return error


@pytest.mark.parametrize(("fields", "code"), [
    ({"messagetype": "system-message"}, 31210),
    ({"messagetype": None}, 31210),
    ({"content": None}, 31100),
    ({"content": "x" * (messages.MAX_CONTENT_BYTES - 2)}, None),  # and 2 quotes: 10 KiB
    ({"content": "x" * (messages.MAX_CONTENT_BYTES - 1)}, 31212),
    ({"content": "é" * (messages.MAX_CONTENT_BYTES // 2)}, 31212),  # bytes, not characters
])
async def test_what_the_relay_refuses(table, fields, code):
    alice, bob, call = await answered(table)
    table.handle(alice, frame("message", **message(call.sid, **fields)))
    if code is None:
        assert len(bob.got("message")) == 1 and len(alice.got("ack")) == 1
        return
    error = refusal(alice)
    assert error["callsid"] == call.sid and error["error"]["code"] == code
    assert bob.got("message") == [] and alice.got("ack") == []


async def test_no_message_before_the_answer_nor_from_a_device_that_rings(table):
    alice, bob = Party("alice"), Party("bob")
    table.registrations.add("bob", bob)
    table.handle(alice, invite("TJSa", "bob"))
    await settled(lambda: alice.got("ringing"), "bob rings")
    (call,) = table.calls
    table.handle(alice, frame("message", **message(call.sid)))
    table.handle(bob, frame("message", **message(bob.got("invite")[0]["callsid"])))
    assert refusal(alice)["error"]["code"] == 31000 and refusal(bob)["error"]["code"] == 31000
    assert alice.got("message") == [] and bob.got("message") == []


async def test_no_message_to_a_party_cut_off_and_resuming(table):
    alice, bob, call = await answered(table)
    table.session_closed(bob)
    table.handle(alice, frame("message", **message(call.sid)))
    assert "reconnecting" in refusal(alice)["error"]["message"]


async def test_messages_a_minute_per_party_are_bounded():
    cfg = exchange_config.ExchangeConfig("AC" + "0" * 32, "SK" + "0" * 32, "s" * 16)
    cfg = replace(cfg, limits=replace(cfg.limits, messages_per_minute=3))
    records = CallRecords.open(None)
    registrations: Registrations[Party] = Registrations()
    limited = CallTable(cfg, dial_plan=DialPlan(cfg), registered=registrations.of,
                        media=FakeMedia(), records=records)
    limited.registrations = registrations  # as the table fixture has it
    try:
        alice, bob, call = await answered(limited)
        for _ in range(4):
            limited.handle(alice, frame("message", **message(call.sid)))
        assert len(bob.got("message")) == 3 and len(alice.got("ack")) == 3
        assert refusal(alice)["error"]["code"] == 31206
        limited.handle(bob, frame("message", **message(call.callee.sid)))
        assert len(alice.got("message")) == 1  # each party has its own count
    finally:
        await limited.close()
        records.close()


@pytest.mark.parametrize("sid", ["KX\nforged line", "KX " + "0" * 30, "K" * 65, ""])
def test_a_voice_event_sid_the_exchange_echoes_is_short_and_printable(sid):
    with pytest.raises(protocol.ProtocolError, match="voiceeventsid"):
        frame("message", **message("CA1", voiceeventsid=sid))
