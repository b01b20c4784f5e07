"""Media loss during a call (issue 8), through the netfault relay: no RTP for the watchdog's
timeout -> reconnecting (53405) -> a new peer connection offered with reinvite -> the exchange
answers for that leg only -> reconnected; or, past the give-up time, 53405 and disconnect."""

from __future__ import annotations

import asyncio

import pytest

from piphone.voice import CallStatus
from piphone.voice.reconnect import ReconnectSettings

from .helpers import Events, hears, place_and_answer, place_ringing
from .test_reconnect_signaling import RECONNECT_EVENTS

pytestmark = pytest.mark.net


async def _call(make_phone, netfault, settings=None):
    options = {"reconnect": settings} if settings else {}
    alice = await make_phone("alice", tone=440, signaling_url=netfault.url, **options)
    bob = await make_phone("bob", tone=660)
    outgoing, incoming, _, inc = await place_and_answer(alice, bob)
    out = Events(outgoing, RECONNECT_EVENTS)
    inc = Events(incoming, RECONNECT_EVENTS)
    await hears(alice, 660)
    await hears(bob, 440)
    return alice, bob, outgoing, incoming, out, inc


@pytest.mark.parametrize("exchange_cfg", [{"reconnect_grace": 10.0}], indirect=True)
async def test_blackhole_of_5_s_reconnects_within_a_second_of_restore(leaks, make_phone,
                                                                       netfault, exchange):
    alice, bob, outgoing, incoming, out, inc = await _call(make_phone, netfault)
    loop = asyncio.get_running_loop()
    netfault.media.set(blackhole=True)
    holed = loop.time()
    (error,) = await out.wait("reconnecting", timeout=5)
    assert error.code == 53405
    assert 2.5 <= loop.time() - holed < 4.0  # the RTP watchdog's 3 s, not aioice's 30 s
    assert outgoing.status() is CallStatus.RECONNECTING
    await asyncio.sleep(max(0.0, holed + 5 - loop.time()))  # the outage lasts 5 s
    assert outgoing.status() is CallStatus.RECONNECTING
    netfault.media.set(blackhole=False)
    restored = loop.time()
    await out.wait("reconnected", timeout=5)
    took = loop.time() - restored
    assert took < 1.0, f"reconnected {took:.2f} s after the relay passed packets again"
    assert outgoing.status() is CallStatus.OPEN
    assert out.names() == ["reconnecting", "reconnected"]
    assert out.statuses() == ["reconnecting", "open"]
    # The far party was never told anything: its leg got silence meanwhile.
    assert inc.names() == [] and incoming.status() is CallStatus.OPEN
    await hears(alice, 660)
    await hears(bob, 440)
    assert outgoing._reconnection.media_attempts >= 2  # attempts failed while the hole lasted
    outgoing.disconnect()
    await inc.wait("disconnect")
    await leaks.shut_down_and_check([alice, bob], netfault, exchange)


SHORT = ReconnectSettings(rtp_timeout=1.0, give_up=3.0)


async def test_blackhole_past_give_up_fails_with_53405_and_hangs_up(leaks, make_phone,
                                                                     netfault, exchange):
    alice, bob, outgoing, incoming, out, inc = await _call(make_phone, netfault, SHORT)
    loop = asyncio.get_running_loop()
    netfault.media.set(blackhole=True)
    await out.wait("reconnecting", timeout=3)
    lost = loop.time()
    await out.wait("disconnect", timeout=SHORT.give_up + 3)
    assert SHORT.give_up - 0.2 <= loop.time() - lost < SHORT.give_up + 2
    assert out.names() == ["reconnecting", "error", "disconnect"]
    ((error,),) = out.all("error")
    assert error.code == 53405
    assert outgoing.status() is CallStatus.CLOSED
    await inc.wait("disconnect", timeout=2)  # the far side gets the hangup
    assert inc.names() == ["disconnect"]
    assert not exchange.calls.calls
    await leaks.shut_down_and_check([alice, bob], netfault, exchange)


async def test_bad_reinvites_get_a_clear_error_and_the_call_goes_on(leaks, make_phone,
                                                                    exchange):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=660)
    devents = Events(alice.device, ("error",))
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    out = Events(outgoing, RECONNECT_EVENTS)
    inc = Events(incoming, RECONNECT_EVENTS)
    alice.device._stream.send("reinvite", {"callsid": outgoing.sid, "sdp": "garbage"})
    (error, call) = await devents.wait("error")
    assert error.code == 31100 and call is outgoing
    await asyncio.sleep(0.5)  # nothing is to happen: the exchange kept the leg as it was
    await hears(alice, 660)
    await hears(bob, 440)
    assert out.names() == ["error"] and inc.names() == []
    assert outgoing.status() is CallStatus.OPEN
    await leaks.shut_down_and_check([alice, bob], None, exchange)


async def test_reinvite_of_a_ringing_call_is_refused(leaks, make_phone, exchange):
    alice = await make_phone("alice")
    bob = await make_phone("bob")
    devents = Events(alice.device, ("error",))
    outgoing, incoming, out, inc = await place_ringing(alice, bob)
    alice.device._stream.send("reinvite", {"callsid": outgoing.sid, "sdp": "v=0"})
    (error, _) = await devents.wait("error")
    assert error.code == 31005 and "ringing" in error.message
    await incoming.accept()
    await out.wait("accept")  # the call itself is unharmed
    await leaks.shut_down_and_check([alice, bob], None, exchange)


async def test_blackhole_of_40_s_with_the_real_timers(leaks, make_phone, netfault, exchange):
    """The issue's case with the phone's own settings: 3 s to notice, 30 s of attempts."""
    alice, bob, outgoing, incoming, out, inc = await _call(make_phone, netfault)
    loop = asyncio.get_running_loop()
    netfault.media.set(blackhole=True)
    holed = loop.time()
    await out.wait("reconnecting", timeout=5)
    await out.wait("disconnect", timeout=40)
    gave_up = loop.time() - holed
    assert 32 <= gave_up < 36, f"gave up {gave_up:.1f} s into the hole"
    assert out.names() == ["reconnecting", "error", "disconnect"]
    assert [e.code for (e,) in out.all("error")] == [53405]
    await inc.wait("disconnect", timeout=2)
    assert inc.names() == ["disconnect"]
    attempts = outgoing._reconnection.media_attempts
    assert 15 <= attempts <= 45, attempts  # short attempts, backoff capped: ~1 s apart
    await leaks.shut_down_and_check([alice, bob], netfault, exchange)
