"""Call messages between Twilio's own SDK and piphone through the exchange, both ways: what
the SDK's sendMessage returns, its messageSent and messageReceived, and its error for a
message the exchange refuses."""

from __future__ import annotations

import re

from ..integration.helpers import DEVICE_EVENTS, Events
from .conftest import pytestmark  # noqa: F401
from .test_sdk_calls import PIPHONE_TONE, browser_talks_to_bob

MESSAGE_EVENTS = ("messageSent", "messageReceived", "error")
SID = re.compile(r"KX[0-9a-f]{32}")


async def test_the_browser_sends_to_piphone(piphone, sdk_phone):
    bob, browser, incoming = await browser_talks_to_bob(piphone, sdk_phone)
    heard = Events(incoming, MESSAGE_EVENTS)
    sid = await browser.run("m => window.phone.sendMessage(m)", {
        "content": {"text": "hello from the SDK", "n": 2},
        "messageType": "user-defined-message"})
    assert SID.fullmatch(sid)
    sent = await browser.wait_event("messageSent")
    # The SDK's messageSent carries the message as given (no contentType: none) and its SID.
    assert sent["args"] == [{"content": {"text": "hello from the SDK", "n": 2},
                             "contentType": None, "messageType": "user-defined-message",
                             "voiceEventSid": sid}]
    (received,) = await heard.wait("messageReceived")
    assert received["content"] == {"text": "hello from the SDK", "n": 2}
    assert received["content_type"] == "application/json"  # the SDK's default on the wire
    assert received["message_type"] == "user-defined-message"
    assert SID.fullmatch(received["voice_event_sid"]) and received["voice_event_sid"] != sid
    assert heard.names() == ["messageReceived"]


async def test_piphone_sends_to_the_browser(piphone, sdk_phone):
    browser = await sdk_phone("browser")
    await browser.wait_event("registered", source="device")
    alice = await piphone("alice", tone=PIPHONE_TONE)
    call = await alice.device.connect({"To": "client:browser"})
    events = Events(call, ("accept", *MESSAGE_EVENTS))
    await browser.wait_event("incoming", source="device")
    await browser.run("window.phone.accept()")
    await events.wait("accept")
    await browser.wait_event("accept")
    sid = call.send_message({"content": {"text": "hello from piphone"},
                             "message_type": "user-defined-message"})
    received = await browser.wait_event("messageReceived")
    (message,) = received["args"]
    assert message["content"] == {"text": "hello from piphone"}
    assert message["contentType"] == "application/json"
    assert message["messageType"] == "user-defined-message"
    assert SID.fullmatch(message["voiceEventSid"]) and message["voiceEventSid"] != sid
    (acked,) = await events.wait("messageSent")
    assert acked["voice_event_sid"] == sid
    # A reply from the browser reaches piphone on the same call.
    await browser.run("m => window.phone.sendMessage(m)", {
        "content": "ok", "contentType": "text/plain", "messageType": "user-defined-message"})
    (reply,) = await events.wait("messageReceived")
    assert reply["content"] == "ok" and reply["content_type"] == "text/plain"
    assert await browser.names() == ["accept", "messageReceived", "messageSent"]


async def test_the_sdk_reports_a_refused_message_on_the_call(piphone, sdk_phone):
    bob, browser, incoming = await browser_talks_to_bob(piphone, sdk_phone)
    heard = Events(incoming, MESSAGE_EVENTS)
    device = Events(bob.device, DEVICE_EVENTS)
    await browser.run("m => window.phone.sendMessage(m)", {
        "content": "x" * 20_000, "messageType": "user-defined-message"})
    error = await browser.wait_event("error")
    assert error["args"][0]["code"] == 31212  # the SDK's PayloadSizeExceededError
    # The SDK's own checks, before anything is sent: InvalidArgumentError.
    thrown = await browser.run("""m => { try { window.phone.sendMessage(m); return null; }
                                         catch (e) { return e.name + ': ' + e.message; } }""",
                               {"content": "x"})
    assert thrown == "InvalidArgumentError: `messageType` must be a string."
    await browser.run("m => window.phone.sendMessage(m)", {
        "content": "fits", "messageType": "user-defined-message"})
    await browser.wait_event("messageSent")
    (received,) = await heard.wait("messageReceived")
    assert received["content"] == "fits" and heard.names() == ["messageReceived"]
    assert [e["name"] for e in await browser.log("device")
            if e["name"] == "error"] == []  # the SDK's Device leaves it to the call
    assert device.names() == []
