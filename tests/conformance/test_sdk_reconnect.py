"""What Twilio's SDK can resume at piphone's exchange (issue 8): its media restart.

The SDK restarts ICE on the same RTCPeerConnection and sends ``reinvite``; the exchange has
no ICE restart (aiortc) and answers with a new peer connection for that leg."""

from __future__ import annotations

from piphone.voice import CallStatus

from ..conftest import until
from ..integration.helpers import hears
from .conftest import BROWSER_TONE, pytestmark  # noqa: F401
from .test_sdk_calls import PIPHONE_TONE, browser_hears, browser_talks_to_bob


async def test_media_restart_of_the_browser(piphone, sdk_phone, exchange):
    bob, browser, incoming = await browser_talks_to_bob(piphone, sdk_phone)
    await hears(bob, BROWSER_TONE)
    (call,) = exchange.calls.calls
    old = call.caller.media
    # What the SDK does when its media fails: ICE restart offer -> reinvite.
    await browser.run("window.phone.call._mediaHandler.iceRestart()")
    await until(lambda: call.caller.media is not old, 5, what="the reinvite at the exchange")
    new = call.caller.media
    await until(lambda: new.connected, 10,
                what=f"the browser on the new leg (state {new.leg.media.state})")
    await hears(bob, BROWSER_TONE, timeout=8)  # through the new leg: the old one is closed
    await browser_hears(browser, PIPHONE_TONE)
    assert incoming.status() is CallStatus.OPEN
    assert (await browser.state())["status"] == "open"
    errors = [e for e in await browser.log("call") if e["name"] == "error"]
    assert errors == []
