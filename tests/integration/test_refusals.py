"""Calls the exchange refuses or ends unanswered: codes, statuses and events at the caller."""

from __future__ import annotations

import asyncio

import pytest

from piphone.pcm import dominant_frequency
from piphone.voice import CallStatus

from ..conftest import until
from .helpers import Events, hears, place_and_answer, place_ringing

pytestmark = pytest.mark.net


async def refused(call, code: int) -> Events:
    events = Events(call)
    (error,) = await events.wait("error")
    assert error.code == code
    await events.wait("disconnect")
    assert call.status() is CallStatus.CLOSED
    return events


@pytest.mark.parametrize("to", ["5550199", "+15550199", "client:", ""])
async def test_unknown_destination_is_not_found(make_phone, to):
    alice = await make_phone("alice")
    call = await alice.device.connect({"To": to})
    events = await refused(call, 31404)
    assert events.names() == ["error", "disconnect"]  # it never rang
    assert alice.device.calls == []


async def test_callee_not_registered_is_unavailable(make_phone):
    alice = await make_phone("alice")
    await make_phone("bob", register=False)  # connected, but not registered
    call = await alice.device.connect({"To": "bob"})
    events = await refused(call, 31480)
    assert events.names() == ["error", "disconnect"]
    call = await alice.device.connect({"To": "nobody"})
    await refused(call, 31480)


async def test_callee_in_a_call_is_busy_and_the_call_goes_on(make_phone):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880)
    carol = await make_phone("carol")
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    call = await carol.device.connect({"To": "bob"})
    events = await refused(call, 31486)
    assert events.names() == ["error", "disconnect"]
    assert bob.incoming.empty()
    await hears(alice, 880)
    await hears(bob, 440)
    assert out.names() == ["ringing", "accept"] and inc.names() == ["accept"]
    # Once bob hangs up, carol gets through.
    incoming.disconnect()
    await out.wait("disconnect")
    call = await carol.device.connect({"To": "bob"})
    second = await bob.next_call()
    second.reject()
    await refused(call, 31603)


@pytest.mark.parametrize("exchange_cfg", [{"call_waiting": True}], indirect=True)
async def test_with_call_waiting_a_busy_callee_rings_and_its_refusal_is_busy(make_phone):
    """[exchange] call_waiting: a client in a call is rung too (as Twilio rings a busy
    client); its device decides. Refused there, the caller hears busy (31486), not a decline,
    and the call in progress goes on."""
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880, allow_incoming_while_busy=True)
    carol = await make_phone("carol")
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    call = await carol.device.connect({"To": "bob"})
    waiting = await bob.next_call()  # rings while bob talks to alice
    waiting.reject()
    events = await refused(call, 31486)
    assert events.names() == ["error", "disconnect"]
    await hears(alice, 880)
    talking = bob.recorders[0]  # the first call's earpiece (the refused call had its own)
    await until(lambda: (f := dominant_frequency(talking.last(0.4), talking.sample_rate or 48000))
                is not None and abs(f - 440) <= 15, what="bob still hears alice")
    assert out.names() == ["ringing", "accept"] and inc.names() == ["accept"]


@pytest.mark.parametrize("exchange_cfg", [{"ring_timeout": 0.6}], indirect=True)
async def test_ring_timeout_ends_the_call_as_unavailable(make_phone):
    alice = await make_phone("alice")
    bob = await make_phone("bob")
    call, incoming, out, inc = await place_ringing(alice, bob)
    rang_at = asyncio.get_running_loop().time()
    (error,) = await out.wait("error", timeout=3)
    assert error.code == 31480
    assert asyncio.get_running_loop().time() - rang_at >= 0.5
    await out.wait("disconnect")
    await inc.wait("cancel")
    assert incoming.status() is CallStatus.CLOSED and call.status() is CallStatus.CLOSED
    assert out.names() == ["ringing", "error", "disconnect"]
    assert inc.names() == ["cancel"]


@pytest.mark.parametrize("exchange_cfg", [{"max_calls": 1}], indirect=True)
async def test_exchange_at_capacity_refuses_and_leaves_the_call_up(make_phone, exchange):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880)
    carol = await make_phone("carol")
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    for to in ("echo", "alice", "dave"):
        call = await carol.device.connect({"To": to})
        events = await refused(call, 31005)
        assert events.names() == ["error", "disconnect"]
    assert len(exchange.calls.calls) == 1
    await hears(alice, 880)
    await hears(bob, 440)
    assert outgoing.status() is CallStatus.OPEN and incoming.status() is CallStatus.OPEN
    assert out.names() == ["ringing", "accept"] and inc.names() == ["accept"]
    # Capacity comes back when the call ends.
    outgoing.disconnect()
    await inc.wait("disconnect")
    call = await carol.device.connect({"To": "echo"})
    await Events(call).wait("accept")
