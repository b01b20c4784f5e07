"""Call flows between two Devices through the real exchange: statuses and events on both sides."""

from __future__ import annotations

import asyncio

import pytest

from piphone.voice import CallStatus

from ..conftest import until
from .helpers import Events, hears, place_and_answer, place_ringing

pytestmark = pytest.mark.net


async def test_outgoing_call_rings_then_opens_with_audio_both_ways(make_phone, wire):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880)
    outgoing = await alice.device.connect({"To": "bob"})
    out = Events(outgoing)
    assert outgoing.status() is CallStatus.CONNECTING
    assert outgoing.call_sid is None and outgoing.outbound_connection_id.startswith("TJS")
    incoming = await bob.next_call()
    inc = Events(incoming)
    assert incoming.status() is CallStatus.PENDING
    assert incoming.parameters["From"] == "client:alice"
    assert incoming.parameters["To"] == "client:bob"
    await out.wait("ringing")
    assert outgoing.status() is CallStatus.RINGING
    assert out.all("ringing") == [(False,)]  # no early media
    # The caller now knows its real CallSid, the parent of the callee's leg.
    assert outgoing.call_sid.startswith("CA")
    assert outgoing.call_sid != incoming.call_sid
    await incoming.accept()
    await out.wait("accept")
    await inc.wait("accept")
    assert outgoing.status() is CallStatus.OPEN and incoming.status() is CallStatus.OPEN
    await hears(bob, 440)
    await hears(alice, 880)
    assert out.names() == ["ringing", "accept"]
    assert out.statuses() == ["ringing", "open"]
    assert inc.names() == ["accept"]
    assert inc.statuses() == ["connecting", "open"]
    assert wire.types_from("bob") == ["listen", "register", "answer"]
    assert alice.device.calls == [outgoing] and bob.device.calls == [incoming]


async def test_callee_rejects(make_phone, wire):
    alice = await make_phone("alice")
    bob = await make_phone("bob")
    outgoing, incoming, out, inc = await place_ringing(alice, bob)
    incoming.reject()
    assert incoming.status() is CallStatus.CLOSED
    (error,) = await out.wait("error")
    assert error.code == 31603
    await out.wait("disconnect")
    assert outgoing.status() is CallStatus.CLOSED
    assert out.names() == ["ringing", "error", "disconnect"]
    assert inc.names() == ["reject"]
    assert inc.statuses() == ["closed"]
    assert len(wire.got("bob", "reject")) == 1
    assert not wire.to("bob", "cancel"), "the device that rejected is told nothing more"
    await until(lambda: not alice.device.calls and not bob.device.calls, 2, "calls forgotten")


async def test_ignore_keeps_the_caller_ringing_and_another_device_can_answer(make_phone, wire):
    alice = await make_phone("alice", tone=440)
    bob1 = await make_phone("bob", tone=880)
    bob2 = await make_phone("bob", tone=660)
    outgoing = await alice.device.connect({"To": "bob"})
    out = Events(outgoing)
    first = await bob1.next_call()
    second = await bob2.next_call()
    first_events, second_events = Events(first), Events(second)
    await out.wait("ringing")
    sent_before = len(wire.received)
    first.ignore()
    assert first_events.names() == ["cancel"]
    assert first.status() is CallStatus.CLOSED
    # Ignoring sends nothing: the exchange hears no frame, the caller keeps ringing, the
    # other device keeps ringing.
    await asyncio.sleep(0.3)  # a window in which a wrongly sent frame would arrive
    assert wire.received[sent_before:] == []
    assert outgoing.status() is CallStatus.RINGING
    assert second.status() is CallStatus.PENDING
    await second.accept()
    await out.wait("accept")
    await second_events.wait("accept")
    await hears(alice, 660)
    await hears(bob2, 440)
    # The ignored device's call stays closed and hears of nothing else.
    assert first_events.names() == ["cancel"]
    assert bob1.device.calls == []
    assert out.names() == ["ringing", "accept"]


async def test_fork_rings_every_device_first_answer_wins(make_phone):
    alice = await make_phone("alice", tone=440)
    bob1 = await make_phone("bob", tone=880)
    bob2 = await make_phone("bob", tone=660)
    outgoing = await alice.device.connect({"To": "bob"})
    out = Events(outgoing)
    first = await bob1.next_call()
    second = await bob2.next_call()
    assert first.call_sid != second.call_sid
    first_events, second_events = Events(first), Events(second)
    await out.wait("ringing")
    await second.accept()
    await first_events.wait("cancel")
    assert first.status() is CallStatus.CLOSED
    await out.wait("accept")
    await hears(alice, 660)
    await hears(bob2, 440)
    assert first_events.names() == ["cancel"]
    assert second_events.names() == ["accept"]
    assert out.names() == ["ringing", "accept"]
    # Late accept on the cancelled fork does nothing.
    assert first.accept() is None
    assert first.status() is CallStatus.CLOSED


async def test_caller_cancels_before_answer(make_phone, wire):
    alice = await make_phone("alice")
    bob = await make_phone("bob")
    outgoing, incoming, out, inc = await place_ringing(alice, bob)
    outgoing.disconnect()
    assert outgoing.status() is CallStatus.CLOSED
    assert out.names() == ["ringing", "cancel"]
    await inc.wait("cancel")
    assert incoming.status() is CallStatus.CLOSED
    assert inc.names() == ["cancel"]
    await asyncio.sleep(0.2)  # nothing more may arrive (no disconnect, no error)
    assert out.names() == ["ringing", "cancel"]
    assert inc.names() == ["cancel"]
    assert len(wire.got("alice", "hangup")) == 1


async def test_caller_cancels_before_ringing(make_phone):
    alice = await make_phone("alice")
    bob = await make_phone("bob")
    outgoing = await alice.device.connect({"To": "bob"})
    out = Events(outgoing)
    outgoing.disconnect()  # still connecting: only the temporary id is known
    assert out.names() == ["cancel"]
    await asyncio.sleep(0.5)
    # Either bob never rang or his ringing call was cancelled; nothing is left open.
    while not bob.incoming.empty():
        call = bob.incoming.get_nowait()
        await until(lambda c=call: c.status() is CallStatus.CLOSED, 2, "bob's call cancelled")
    assert not bob.device.calls


@pytest.mark.parametrize("side", ["caller", "callee"])
async def test_disconnect_from_either_side(make_phone, side):
    alice = await make_phone("alice")
    bob = await make_phone("bob")
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    (outgoing if side == "caller" else incoming).disconnect()
    await out.wait("disconnect")
    await inc.wait("disconnect")
    assert outgoing.status() is CallStatus.CLOSED and incoming.status() is CallStatus.CLOSED
    assert out.names() == ["ringing", "accept", "disconnect"]
    assert inc.names() == ["accept", "disconnect"]
    assert out.all("disconnect") == [(outgoing,)] and inc.all("disconnect") == [(incoming,)]
    await asyncio.wait_for(asyncio.gather(outgoing.wait_closed(), incoming.wait_closed()), 5)
    assert not alice.device.is_busy and not bob.device.is_busy


async def test_custom_parameters_reach_the_callee(make_phone):
    alice = await make_phone("alice")
    bob = await make_phone("bob")
    outgoing = await alice.device.connect({"To": "bob", "foo": "bar baz", "x&y": "1=2"})
    incoming = await bob.next_call()
    assert incoming.custom_parameters == {"foo": "bar baz", "x&y": "1=2"}
    assert outgoing.custom_parameters == {"To": "bob", "foo": "bar baz", "x&y": "1=2"}
    assert incoming.caller_info is None  # no attestation configured
    incoming.reject()


@pytest.mark.parametrize(
    ("exchange_cfg", "expected"),
    [
        ({"attestation": {"alice": "TN-Validation-Passed-A"}}, {"is_verified": True}),
        ({"attestation": {"alice": "TN-Validation-Failed"}}, {"is_verified": False}),
        ({"attestation": {"carol": "TN-Validation-Passed-A"}}, None),
    ],
    indirect=["exchange_cfg"],
    ids=["verified", "not-verified", "unset"],
)
async def test_caller_info_follows_the_exchange_attestation(make_phone, expected):
    alice = await make_phone("alice")
    bob = await make_phone("bob")
    await alice.device.connect({"To": "bob"})
    incoming = await bob.next_call()
    assert incoming.caller_info == expected
    incoming.reject()


@pytest.mark.parametrize(("line", "expected_hz"), [("echo", 440), ("tone", 1000)])
async def test_service_lines(make_phone, line, expected_hz):
    alice = await make_phone("alice", tone=440)
    outgoing = await alice.device.connect({"To": line})
    out = Events(outgoing)
    await out.wait("accept")
    assert outgoing.call_sid.startswith("CA")
    await hears(alice, expected_hz)
    outgoing.disconnect()
    assert out.names() == ["ringing", "accept", "disconnect"]
    assert outgoing.status() is CallStatus.CLOSED


async def test_a_device_takes_a_second_call_after_the_first(make_phone):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880)
    for _ in range(2):
        outgoing, incoming, out, inc = await place_and_answer(alice, bob)
        await hears(alice, 880)
        await hears(bob, 440)
        outgoing.disconnect()
        await inc.wait("disconnect")
