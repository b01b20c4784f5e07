"""Call.send_message and its events (voice/messages.py), through a real Call with fake ports:
the SDK's checks and errors, the frame it sends, messageSent on the server's ack,
messageReceived, and a message's error reported on the call only."""

from __future__ import annotations

import re
from typing import Any

import pytest

from piphone.errors import InvalidArgumentError, InvalidStateError
from piphone.voice import messages
from piphone.voice.call import CallDirection, CallStatus
from piphone.voice.errors import TwilioError

from .call_rig import CALLSID, make_call, open_incoming, place

MESSAGE = {"content": {"ask": "volume"}, "message_type": "user-defined-message"}


def events_of(call: Any) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []
    for name in ("messageSent", "messageReceived", "error"):
        call.on(name, lambda arg, _n=name: seen.append((_n, arg)))
    return seen


async def test_a_message_goes_out_with_a_voice_event_sid_and_is_sent_on_the_ack():
    call, rig, _ = await open_incoming()
    seen = events_of(call)
    sid = call.send_message(MESSAGE)
    assert re.fullmatch(r"KX[0-9a-f]{32}", sid)
    assert rig.of_kind("message") == [{
        "callsid": CALLSID, "content": {"ask": "volume"}, "contenttype": "application/json",
        "messagetype": "user-defined-message", "voiceeventsid": sid}]
    assert seen == []  # sent is what the server's ack says
    rig.frame("ack", {"callsid": CALLSID, "acktype": "message", "voiceeventsid": sid})
    # The SDK's messageSent carries the message as given (no content type: none) and its SID.
    assert seen == [("messageSent", {"content": {"ask": "volume"}, "content_type": None,
                                     "message_type": "user-defined-message",
                                     "voice_event_sid": sid})]
    rig.frame("ack", {"callsid": CALLSID, "acktype": "message", "voiceeventsid": sid})
    assert len(seen) == 1  # once
    other = call.send_message({**MESSAGE, "content_type": "text/plain", "content": "hi"})
    assert other != sid and rig.of_kind("message")[1]["contenttype"] == "text/plain"


async def test_a_ringing_incoming_call_may_send_as_in_the_sdk():
    call, rig, _ = make_call(CallDirection.INCOMING)
    assert call.status() is CallStatus.PENDING
    call.send_message(MESSAGE)
    assert rig.kinds() == ["message"]


@pytest.mark.parametrize(("message", "error"), [
    ({"message_type": "user-defined-message"}, "`content` is empty"),
    ({"content": None, "message_type": "user-defined-message"}, "`content` is empty"),
    ({"content": "x"}, "`message_type` must be a string."),
    ({"content": "x", "messageType": "user-defined-message"}, "`message_type` must be a string"),
    ({"content": "x", "message_type": 5}, "`message_type` must be a string."),
    ({"content": "x", "message_type": ""}, "`message_type` must be a non-empty string."),
    ({"content": "x", "message_type": "m", "content_type": 1}, "`content_type` must be"),
    ({"content": {1, 2}, "message_type": "m"}, "cannot be sent as JSON"),
    ({"content": float("nan"), "message_type": "m"}, "cannot be sent as JSON"),
    ("content", "must be a mapping"),
])
async def test_the_sdks_argument_checks(message, error):
    call, rig, _ = await open_incoming()
    with pytest.raises(InvalidArgumentError, match=re.escape(error)):
        call.send_message(message)
    assert rig.of_kind("message") == []


async def test_no_callsid_yet_or_a_closed_call_is_an_invalid_state():
    call, rig, _ = await place(ring=False, answer=False)
    with pytest.raises(InvalidStateError, match="Call has no CallSid"):
        call.send_message(MESSAGE)
    rig.frame("ringing", {"callsid": CALLSID})  # now the call has its CallSid
    call.send_message(MESSAGE)
    call.disconnect()
    with pytest.raises(InvalidStateError, match="closed"):
        call.send_message(MESSAGE)
    assert len(rig.of_kind("message")) == 1


async def test_a_received_message_is_the_sdks_message_object():
    call, rig, _ = await open_incoming()
    seen = events_of(call)
    rig.frame("message", {"callsid": CALLSID, "content": "{\"a\": 1}",
                          "contenttype": "application/json",
                          "messagetype": "user-defined-message", "voiceeventsid": "KX9"})
    rig.frame("message", {"callsid": "CAother", "content": "x", "voiceeventsid": "KX8"})
    rig.frame("ack", {"callsid": "CAother", "acktype": "message", "voiceeventsid": "KX8"})
    assert seen == [("messageReceived", {"content": "{\"a\": 1}",
                                         "content_type": "application/json",
                                         "message_type": "user-defined-message",
                                         "voice_event_sid": "KX9"})]
    call.disconnect()
    rig.frame("message", {"callsid": CALLSID, "content": "late", "voiceeventsid": "KX7"})
    assert len(seen) == 1  # a closed call hears no more


async def test_a_refused_message_is_an_error_of_the_call_and_never_sent():
    call, rig, log = await open_incoming()
    seen = events_of(call)
    sid = call.send_message(MESSAGE)
    rig.frame("error", {"callsid": CALLSID, "voiceeventsid": sid,
                        "error": {"code": 31212, "message": "over 10240 bytes"}})
    ((name, error),) = seen
    assert name == "error" and isinstance(error, TwilioError)
    assert (error.code, error.name, error.message) == (
        31212, "PayloadSizeExceededError", "over 10240 bytes")
    rig.frame("ack", {"callsid": CALLSID, "acktype": "message", "voiceeventsid": sid})
    # An error for a message the call did not send is not the call's business (the SDK's).
    rig.frame("error", {"callsid": CALLSID, "voiceeventsid": "KXnotours",
                        "error": {"code": 31206, "message": "rate"}})
    assert len(seen) == 1 and call.status() is CallStatus.OPEN


async def test_pending_messages_are_bounded(monkeypatch):
    monkeypatch.setattr(messages, "MAX_PENDING", 3)
    call, rig, _ = await open_incoming()
    seen = events_of(call)
    sids = [call.send_message(MESSAGE) for _ in range(4)]
    for sid in sids:
        rig.frame("ack", {"callsid": CALLSID, "acktype": "message", "voiceeventsid": sid})
    assert [arg["voice_event_sid"] for _, arg in seen] == sids[1:]  # the oldest was forgotten
