"""Connect tokens through the real exchange (issue 16): a Device of the call's own identity
takes the call over with ``connect(connect_token=...)`` (new media, the far party hears the
new device, one call in the exchange's log); another identity holding the same token is
refused (31209, the SDK's ReconnectAttemptError) and the call goes on untouched; the first
device, once its socket is back, cannot take the call back from the second."""

from __future__ import annotations

import pytest

from piphone.voice import CallStatus
from piphone.voice import connect_token as ct

from ..conftest import until
from .helpers import Events, hears, place_and_answer

pytestmark = pytest.mark.net

EVENTS = ("accept", "error", "disconnect", "cancel", "reconnecting", "reconnected")


def _alice_leg(exchange):
    (call,) = exchange.calls.calls
    return call.caller


@pytest.mark.parametrize("exchange_cfg", [{"reconnect_grace": 15.0}], indirect=True)
async def test_another_device_takes_the_call_over_and_no_one_else_can(make_phone, netfault,
                                                                       exchange):
    alice = await make_phone("alice", tone=440, signaling_url=netfault.url)
    bob = await make_phone("bob", tone=660)
    outgoing, incoming, _, bob_events = await place_and_answer(alice, bob, {"To": "client:bob"})
    token = outgoing.connect_token
    assert token is not None
    decoded = ct.decode(token)
    assert decoded.call_sid == outgoing.call_sid
    assert decoded.custom_parameters == {"To": "client:bob"}
    bob_events = Events(incoming, EVENTS)
    await hears(bob, 440)

    netfault.block()  # alice's socket is gone (her own device waits to resume)
    leg = _alice_leg(exchange)
    await until(lambda: leg.session is None, what="alice's leg cut off at the exchange")

    # mallory holds the token: the exchange refuses her, and the call is as it was
    mallory = await make_phone("mallory", tone=1000, register=False)
    stolen = await mallory.device.connect(connect_token=token)
    mallory_events = Events(stolen, EVENTS)
    await mallory_events.wait("disconnect")
    ((error,),) = mallory_events.all("error")
    assert error.code == 31209
    assert leg.session is None and incoming.status() is CallStatus.OPEN
    assert _alice_leg(exchange) is leg

    # alice's second device takes the call over: new media, bob hears it, one call
    second = await make_phone("alice", tone=880, register=False)
    resumed = await second.device.connect(connect_token=token)
    resumed_events = Events(resumed, EVENTS)
    await resumed_events.wait("accept", timeout=5)
    assert resumed.status() is CallStatus.OPEN and resumed.call_sid == outgoing.call_sid
    assert resumed.custom_parameters == {"To": "client:bob"}
    await hears(bob, 880)
    await hears(second, 660)
    assert bob_events.names() == [] and incoming.status() is CallStatus.OPEN
    assert len(exchange.calls.calls) == 1
    assert resumed.connect_token is not None  # it can be handed on again

    # alice's first device gets its socket back: the call is no longer hers to resume
    first_events = Events(outgoing, EVENTS)
    netfault.restore()
    await first_events.wait("disconnect", timeout=10)
    ((error,),) = first_events.all("error")
    assert error.code == 31209
    await hears(bob, 880)  # still the second device
    assert incoming.status() is CallStatus.OPEN

    resumed.disconnect()
    await bob_events.wait("disconnect")
    (record,) = exchange.records.log.recent()
    assert record.call_sid == outgoing.call_sid and record.answered
