"""Twilio's SDK and piphone call each other through the exchange, both ways."""

from __future__ import annotations

import asyncio
import time

import pytest

from piphone.voice import CallStatus

from ..conftest import until
from ..integration.helpers import Events, hears, hears_silence
from .conftest import BROWSER_TONE, pytestmark, timing  # noqa: F401

PIPHONE_TONE = 440.0


async def browser_hears(phone, frequency: float | None, timeout: float = 8.0) -> None:
    """The browser's remote audio peaks at ``frequency`` (None: silence), within timeout."""
    deadline = time.monotonic() + timeout
    peak = None
    while time.monotonic() < deadline:
        peak = await phone.remote_peak(500)
        if (frequency is None and peak is None) or (
                frequency is not None and peak is not None and abs(peak - frequency) < 15):
            return
    raise AssertionError(f"browser heard {peak} Hz, expected {frequency}")


async def browser_talks_to_bob(piphone, sdk_phone):
    """The browser calls bob (a piphone playing PIPHONE_TONE), who answers; returns bob, the
    browser and bob's call once the browser has seen the accept."""
    bob = await piphone("bob", tone=PIPHONE_TONE)
    browser = await sdk_phone("browser")
    await browser.wait_event("registered", source="device")
    await browser.run("p => window.phone.connect(p)", {"To": "bob"})
    incoming = await bob.next_call()
    await incoming.accept()
    await browser.wait_event("accept")
    return bob, browser, incoming


@pytest.mark.parametrize("hangs_up", ["browser", "piphone"])
async def test_piphone_calls_the_browser(piphone, sdk_phone, exchange_cfg, hangs_up):
    browser = await sdk_phone("browser")
    await browser.wait_event("registered", source="device")
    alice = await piphone("alice", tone=PIPHONE_TONE)
    started = time.monotonic()
    call = await alice.device.connect({"To": "client:browser", "topic": "lunch & more"})
    out = Events(call)
    await browser.wait_event("incoming", source="device")
    invite_to_incoming = time.monotonic() - started
    state = await browser.state()
    assert state["status"] == "pending" and state["direction"] == "INCOMING"
    params = state["parameters"]
    assert params["From"] == "client:alice" and params["To"] == "client:browser"
    assert params["CallSid"].startswith("CA") and params["AccountSid"] == exchange_cfg.account_sid
    assert state["customParameters"] == {"topic": "lunch & more"}
    assert state["callerInfo"] is None
    await out.wait("ringing")
    accepted = time.monotonic()
    await browser.run("window.phone.accept()")
    await browser.wait_event("accept")
    await out.wait("accept")
    timing("piphone connect() -> SDK incoming", invite_to_incoming)
    timing("SDK accept() -> both sides open", time.monotonic() - accepted)
    state = await browser.state()
    assert state["status"] == "open" and call.status() is CallStatus.OPEN
    await browser.wait_event("sample")  # the SDK learns its codec from its first stats sample
    # The SDK answers with its own preference (it reorders our offer: PCMU first), so this
    # leg may differ from piphone's; each side reports its own leg truthfully.
    # (The SDK's codec comes from Chromium's stats: "PCMU" in capitals, though its docs say
    # "pcmu"; piphone follows the docs.)
    assert (await browser.state())["codec"].lower() == "pcmu" and call.codec == "opus"
    await hears(alice, BROWSER_TONE)
    await browser_hears(browser, PIPHONE_TONE)
    if hangs_up == "browser":
        await browser.run("window.phone.disconnect()")
        await out.wait("disconnect")
    else:
        call.disconnect()
        await browser.wait_event("disconnect")
    assert await browser.names() == ["accept", "disconnect"]
    assert out.names() == ["ringing", "accept", "disconnect"]
    assert (await browser.state())["status"] == "closed" and call.status() is CallStatus.CLOSED


@pytest.mark.parametrize(("exchange_cfg", "verified"), [
    ({"attestation": {"alice": "TN-Validation-Passed-A"}}, True),
    ({"attestation": {"alice": "TN-Validation-Passed-B"}}, False),
], indirect=["exchange_cfg"])
async def test_caller_info_reaches_the_sdk(piphone, sdk_phone, verified):
    browser = await sdk_phone("browser")
    await browser.wait_event("registered", source="device")
    alice = await piphone("alice")
    await alice.device.connect({"To": "browser"})
    await browser.wait_event("incoming", source="device")
    assert (await browser.state())["callerInfo"] == {"isVerified": verified}


async def test_browser_caller_cancels_before_answer(piphone, sdk_phone):
    bob = await piphone("bob")
    browser = await sdk_phone("browser")
    await browser.wait_event("registered", source="device")
    await browser.run("p => window.phone.connect(p)", {"To": "bob"})
    incoming = await bob.next_call()
    inc = Events(incoming)
    await browser.wait_event("ringing")
    await browser.run("window.phone.disconnect()")
    await inc.wait("cancel")
    # The SDK emits disconnect here, though its docs (and piphone) say cancel.
    await browser.wait_event("disconnect")
    assert await browser.names() == ["ringing", "disconnect"]
    assert (await browser.state())["status"] == "closed"
    assert incoming.status() is CallStatus.CLOSED and inc.names() == ["cancel"]


async def test_browser_calls_piphone_with_custom_parameters(piphone, sdk_phone):
    bob = await piphone("bob", tone=PIPHONE_TONE)
    browser = await sdk_phone("browser")
    await browser.wait_event("registered", source="device")
    await browser.run("p => window.phone.connect(p)", {"To": "bob", "mood": "sunny"})
    incoming = await bob.next_call()
    assert incoming.custom_parameters == {"mood": "sunny"}
    assert incoming.parameters["From"] == "client:browser"
    await browser.wait_event("ringing")
    assert (await browser.state())["status"] == "ringing"
    accepted = time.monotonic()
    await incoming.accept()
    await browser.wait_event("accept")
    timing("piphone accept() -> SDK open", time.monotonic() - accepted)
    await browser.wait_event("sample")
    state = await browser.state()
    assert state["status"] == "open" and state["direction"] == "OUTGOING"
    # The SDK prefers PCMU; the exchange and piphone keep the caller's choice.
    assert state["codec"].lower() == "pcmu" and incoming.codec == "pcmu"
    await hears(bob, BROWSER_TONE)
    await browser_hears(browser, PIPHONE_TONE)
    inc = Events(incoming)
    incoming.disconnect()
    await browser.wait_event("disconnect")
    assert await browser.names() == ["ringing", "accept", "disconnect"]
    assert inc.names() == ["disconnect"]


async def test_browser_asks_for_opus(piphone, sdk_phone):
    bob = await piphone("bob")
    browser = await sdk_phone("browser", options={"codecPreferences": ["opus", "pcmu"]})
    await browser.wait_event("registered", source="device")
    await browser.run("p => window.phone.connect(p)", {"To": "bob"})
    incoming = await bob.next_call()
    await incoming.accept()
    await browser.wait_event("sample")
    assert (await browser.state())["codec"].lower() == "opus" and incoming.codec == "opus"
    await hears(bob, BROWSER_TONE)


async def test_browser_rejects_and_piphone_rejects(piphone, sdk_phone):
    alice = await piphone("alice")
    browser = await sdk_phone("browser")
    await browser.wait_event("registered", source="device")
    call = await alice.device.connect({"To": "browser"})
    out = Events(call)
    await browser.wait_event("incoming", source="device")
    await browser.run("window.phone.reject()")
    await browser.wait_event("reject")
    (error,) = await out.wait("error")
    assert error.code == 31603
    await out.wait("disconnect")
    assert (await browser.state())["status"] == "closed"
    # And the other way: piphone rejects the browser's call.
    await browser.run("p => window.phone.connect(p)", {"To": "alice"})
    incoming = await alice.next_call()
    incoming.reject()
    await browser.wait_event("disconnect")
    assert (await browser.state())["status"] == "closed"


async def test_ignore_lets_another_device_answer_and_caller_cancel(piphone, sdk_phone):
    alice = await piphone("alice")
    browser = await sdk_phone("shared")
    second = await piphone("shared")
    await browser.wait_event("registered", source="device")
    call = await alice.device.connect({"To": "shared"})
    out = Events(call)
    await browser.wait_event("incoming", source="device")
    incoming = await second.next_call()
    await browser.run("window.phone.ignore()")
    assert (await browser.state())["status"] == "closed"
    # The SDK's ignore() itself emits nothing (its docs and piphone emit cancel at once);
    # its ignored call emits cancel when the exchange cancels the fork, below.
    assert await browser.names() == []
    await out.wait("ringing")
    await incoming.accept()
    await out.wait("accept")
    await browser.wait_event("cancel")  # the other device answered: this fork is cancelled
    call.disconnect()
    # The caller gives up before anyone answers: the browser's ringing call is cancelled.
    second_call = await alice.device.connect({"To": "shared"})
    await browser.wait_event("incoming", source="device", count=2)
    await second.next_call()
    second_call.disconnect()
    await browser.wait_event("cancel", count=2)
    assert (await browser.state())["status"] == "closed"


async def test_mute_both_ways(piphone, sdk_phone):
    bob, browser, incoming = await browser_talks_to_bob(piphone, sdk_phone)
    await hears(bob, BROWSER_TONE)
    await browser.run("window.phone.mute(true)")
    await browser.wait_event("mute")
    await hears_silence(bob)
    await browser.run("window.phone.mute(false)")
    await hears(bob, BROWSER_TONE)
    incoming.mute(True)
    await browser_hears(browser, None)
    incoming.mute(False)
    await browser_hears(browser, PIPHONE_TONE)


async def test_digits_both_ways(piphone, sdk_phone, wire):
    bob = await piphone("bob")
    browser = await sdk_phone("browser")
    await browser.wait_event("registered", source="device")
    await browser.run("p => window.phone.connect(p)", {"To": "bob"})
    incoming = await bob.next_call()
    inc = Events(incoming)
    await incoming.accept()
    await browser.wait_event("accept")
    await browser.run("d => window.phone.sendDigits(d)", "1234#w*")
    await inc.wait("dtmf", count=2)
    assert [a[0] for a in inc.all("dtmf")] == ["1234#", "*"]
    gap = inc.times("dtmf")[1] - inc.times("dtmf")[0]
    assert 0.45 <= gap <= 1.0, gap
    await asyncio.wait_for(incoming.send_digits("9#"), 5)
    # The SDK raises no event for digits it receives: check they reached its socket.
    await until(lambda: wire.to("browser", "dtmf"), what="digits relayed to the browser")
    assert [p["dtmf"] for p in wire.to("browser", "dtmf")] == ["9#"]


async def test_busy_both_ways(piphone, sdk_phone):
    alice = await piphone("alice")
    bob = await piphone("bob")
    browser = await sdk_phone("browser")
    await browser.wait_event("registered", source="device")
    call = await alice.device.connect({"To": "bob"})
    out = Events(call)
    await (await bob.next_call()).accept()
    await out.wait("accept")
    # bob is busy: the browser's call to him fails with 31486 (which the SDK, unless told
    # enableImprovedSignalingErrorPrecision, wraps in a 31005 ConnectionError).
    await browser.run("p => window.phone.connect(p)", {"To": "bob"})
    error = (await browser.wait_event("error"))["args"][0]
    assert error["code"] == 31005 and error["originalCode"] == 31486
    await browser.wait_event("disconnect")
    # Now the browser is in a call with the echo line and bob, done with alice, calls it.
    call.disconnect()
    await browser.run("p => window.phone.connect(p)", {"To": "echo"})
    await browser.wait_event("accept")
    busy = await bob.device.connect({"To": "browser"})
    refused = Events(busy)
    (err,) = await refused.wait("error")
    assert err.code == 31486


async def test_signaling_reconnect_of_the_browser(piphone, sdk_phone, exchange):
    bob, browser, incoming = await browser_talks_to_bob(piphone, sdk_phone)
    # The exchange drops the browser's socket mid-call.
    (session,) = [s for s in exchange.sessions if s.identity == "browser"]
    await session.ws.close(code=1011, reason="test: dropped")
    reconnecting = await browser.wait_event("reconnecting")
    assert reconnecting["args"][0]["code"] == 53001
    await browser.wait_event("reconnected", timeout=15)
    assert (await browser.state())["status"] == "open"
    assert incoming.status() is CallStatus.OPEN
    await browser_hears(browser, PIPHONE_TONE)
    await hears(bob, BROWSER_TONE)
