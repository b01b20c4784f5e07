"""Call messages between two piphones through the real exchange on 127.0.0.1: send_message,
messageSent on the exchange's ack, messageReceived at the far end, a refusal reported on the
call alone, the echo line, and a stranger who knows the CallSids."""

from __future__ import annotations

import re

import pytest

from piphone.voice import CallStatus

from .helpers import DEVICE_EVENTS, Events, place_and_answer
from .hostile import hostile_clients

pytestmark = pytest.mark.net

MESSAGE_EVENTS = ("messageSent", "messageReceived", "error")


async def test_messages_go_both_ways_between_two_piphones(make_phone, wire):
    alice, bob = await make_phone("alice"), await make_phone("bob")
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    sent, heard = Events(outgoing, MESSAGE_EVENTS), Events(incoming, MESSAGE_EVENTS)
    sid = outgoing.send_message({"content": {"text": "lunch?", "n": [1, 2]},
                                 "message_type": "user-defined-message"})
    assert re.fullmatch(r"KX[0-9a-f]{32}", sid)
    (received,) = await heard.wait("messageReceived")
    (acked,) = await sent.wait("messageSent")
    assert acked == {"content": {"text": "lunch?", "n": [1, 2]}, "content_type": None,
                     "message_type": "user-defined-message", "voice_event_sid": sid}
    assert received["content"] == {"text": "lunch?", "n": [1, 2]}
    assert received["content_type"] == "application/json"
    assert received["message_type"] == "user-defined-message"
    assert received["voice_event_sid"].startswith("KX") and received["voice_event_sid"] != sid
    (frame,) = wire.to("bob", "message")  # bob's frame names bob's own CallSid
    assert frame["callsid"] == incoming.call_sid != outgoing.call_sid

    reply = incoming.send_message({"content": "yes", "content_type": "text/plain",
                                   "message_type": "user-defined-message"})
    (back,) = await sent.wait("messageReceived")
    await heard.wait("messageSent")
    assert back["content"] == "yes" and back["content_type"] == "text/plain"
    assert heard.all("messageSent")[0][0]["voice_event_sid"] == reply
    assert sent.names() == ["messageSent", "messageReceived"]
    assert heard.names() == ["messageReceived", "messageSent"]
    # The README's example, as written.
    outgoing.send_message({"content": {"volume": 7},  # any JSON value
                           "message_type": "user-defined-message",
                           "content_type": "application/json"})  # optional: the default
    (readme,) = await heard.wait("messageReceived", count=2)
    assert readme["content"] == {"volume": 7} and readme["content_type"] == "application/json"


async def test_a_refused_message_is_an_error_of_the_call_not_of_the_device(make_phone):
    alice, bob = await make_phone("alice"), await make_phone("bob")
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    sent, heard = Events(outgoing, MESSAGE_EVENTS), Events(incoming, MESSAGE_EVENTS)
    device = Events(alice.device, DEVICE_EVENTS)
    outgoing.send_message({"content": "x" * 20_000, "message_type": "user-defined-message"})
    outgoing.send_message({"content": "hi", "message_type": "system-message"})
    (too_big,) = await sent.wait("error")
    (wrong_type,) = await sent.wait("error", count=2)
    assert (too_big.code, too_big.name) == (31212, "PayloadSizeExceededError")
    assert (wrong_type.code, wrong_type.name) == (31210, "CallMessageEventTypeInvalidError")
    ok = outgoing.send_message({"content": "hi", "message_type": "user-defined-message"})
    assert (await sent.wait("messageSent"))[0]["voice_event_sid"] == ok
    await heard.wait("messageReceived")
    assert heard.all("messageReceived")[0][0]["content"] == "hi"  # only the good one came
    assert device.names() == [] and sent.names() == ["error", "error", "messageSent"]
    assert outgoing.status() is CallStatus.OPEN and incoming.status() is CallStatus.OPEN


async def test_a_message_to_the_echo_line_is_acknowledged(make_phone):
    alice = await make_phone("alice")
    call = await alice.device.connect({"To": "echo"})
    events = Events(call, ("accept", *MESSAGE_EVENTS))
    await events.wait("accept")
    sid = call.send_message({"content": {"ping": 1}, "message_type": "user-defined-message"})
    assert (await events.wait("messageSent"))[0]["voice_event_sid"] == sid
    assert events.names() == ["accept", "messageSent"]


async def test_a_stranger_who_knows_the_callsids_cannot_speak_in_the_call(make_phone, exchange):
    alice, bob = await make_phone("alice"), await make_phone("bob")
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    heard = Events(incoming, MESSAGE_EVENTS)
    async with hostile_clients(exchange) as open_:
        mallory = await open_("mallory")
        for callsid in (outgoing.call_sid, incoming.call_sid):
            await mallory.send("message", callsid=callsid, content="I am alice",
                               messagetype="user-defined-message",
                               voiceeventsid="KX" + "0" * 32)
        # Her own call to the echo line: her messages there are acked, so the ones above
        # were read (frames of one socket are handled in order) and went nowhere.
        callsid, _ = await mallory.answered_call("TJSmallory")
        await mallory.send("message", callsid=callsid, content="mine",
                           messagetype="user-defined-message", voiceeventsid="KX" + "1" * 32)
        ack = await mallory.expect("ack")
        assert ack == {"callsid": callsid, "acktype": "message",
                       "voiceeventsid": "KX" + "1" * 32}
        assert len(mallory.got("ack")) == 1 and mallory.got("message") == []
    outgoing.send_message({"content": "still us", "message_type": "user-defined-message"})
    (received,) = await heard.wait("messageReceived")
    assert received["content"] == "still us" and heard.names() == ["messageReceived"]
