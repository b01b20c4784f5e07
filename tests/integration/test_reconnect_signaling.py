"""Signaling loss during a call (issue 8): the call goes reconnecting (53001), the stream comes
back, the reconnect invite resumes the call at the exchange, and the call is open again with
audio both ways; the Device registers again. A leg that does not come back within the
exchange's grace ends the call on both sides."""

from __future__ import annotations

import asyncio

import pytest

from piphone.voice import CallStatus

from .helpers import CALL_EVENTS, DEVICE_EVENTS, Events, hears, place_and_answer

pytestmark = pytest.mark.net

RECONNECT_EVENTS = (*CALL_EVENTS, "reconnecting", "reconnected")


async def _call_behind_proxy(make_phone, netfault):
    alice = await make_phone("alice", tone=440, signaling_url=netfault.url)
    bob = await make_phone("bob", tone=660)
    devents = Events(alice.device, DEVICE_EVENTS)
    outgoing, incoming, _, inc = await place_and_answer(alice, bob)
    out = Events(outgoing, RECONNECT_EVENTS)
    await hears(alice, 660)
    return alice, bob, outgoing, incoming, out, inc, devents


async def _drop_exchange_side(exchange, identity):
    (session,) = [s for s in exchange.sessions if s.identity == identity]
    await session.ws.close(code=1011, reason="test: dropped by the exchange")


@pytest.mark.parametrize("exchange_cfg", [{"reconnect_grace": 10.0}], indirect=True)
@pytest.mark.parametrize("where", ["network", "client", "exchange"])
async def test_signaling_cut_mid_call_reconnects(leaks, make_phone, netfault, exchange, where):
    alice, bob, outgoing, incoming, out, inc, devents = await _call_behind_proxy(
        make_phone, netfault)
    loop = asyncio.get_running_loop()
    if where == "network":
        netfault.block()  # the socket dies without a close frame and cannot reconnect yet
    elif where == "client":
        alice.device._stream._ws.transport.abort()
    else:
        await _drop_exchange_side(exchange, "alice")
    (error,) = await out.wait("reconnecting")
    assert error.code == 53001
    assert outgoing.status() is CallStatus.RECONNECTING
    if where == "network":
        await asyncio.sleep(0.3)  # the outage lasts; retries are refused meanwhile
        assert outgoing.status() is CallStatus.RECONNECTING
        netfault.restore()
    restored = loop.time()
    await out.wait("reconnected", timeout=5)
    assert loop.time() - restored < 2.0
    assert outgoing.status() is CallStatus.OPEN
    assert out.names() == ["reconnecting", "reconnected"]
    assert out.statuses() == ["reconnecting", "open"]
    assert incoming.status() is CallStatus.OPEN and inc.names() == ["accept"]
    # Media never stopped; both still hear each other, and the call still works.
    await hears(alice, 660)
    await hears(bob, 440)
    outgoing.send_digits("7")
    await inc.wait("dtmf")
    # The Device registered again on the new socket.
    await devents.wait("registered")
    assert devents.names()[-3:] == ["unregistered", "registering", "registered"]
    outgoing.disconnect()
    await inc.wait("disconnect")
    await leaks.shut_down_and_check([alice, bob], netfault, exchange)


@pytest.mark.parametrize("exchange_cfg", [{"reconnect_grace": 0.5}], indirect=True)
async def test_grace_expiry_ends_the_call_on_both_sides(leaks, make_phone, netfault,
                                                         exchange):
    alice, bob, outgoing, incoming, out, inc, _ = await _call_behind_proxy(make_phone,
                                                                          netfault)
    netfault.block()
    await out.wait("reconnecting")
    await inc.wait("disconnect", timeout=3)  # the exchange gave up on alice's leg
    assert not exchange.calls.calls
    netfault.restore()
    (error,) = await out.wait("error", timeout=5)  # the resume is refused: the call ended
    assert error.code == 31005
    await out.wait("disconnect")
    assert out.names() == ["reconnecting", "error", "disconnect"]
    assert outgoing.status() is CallStatus.CLOSED
    await leaks.shut_down_and_check([alice, bob], netfault, exchange)


@pytest.mark.parametrize("exchange_cfg", [{"reconnect_grace": 10.0}], indirect=True)
async def test_hanging_up_while_reconnecting_ends_the_call_at_once(leaks, make_phone,
                                                                   netfault, exchange):
    alice, bob, outgoing, incoming, out, inc, _ = await _call_behind_proxy(make_phone,
                                                                          netfault)
    netfault.block()
    await out.wait("reconnecting")
    outgoing.disconnect()  # the hangup waits for the socket
    assert outgoing.status() is CallStatus.CLOSED
    assert out.names() == ["reconnecting", "disconnect"]
    netfault.restore()
    await inc.wait("disconnect", timeout=3)  # from the hangup, not the 10 s grace
    assert not exchange.calls.calls
    await leaks.shut_down_and_check([alice, bob], netfault, exchange)
