"""Registration, tokens and the Device life cycle against the real exchange."""

from __future__ import annotations

import asyncio

import pytest

from piphone.errors import InvalidStateError
from piphone.voice import CallStatus, Device, DeviceState, TwilioError
from piphone.voice.tokens import mint

from ..conftest import LOOPBACK, until
from .helpers import DEVICE_EVENTS, Events, place_and_answer, place_ringing

pytestmark = pytest.mark.net


def token_for(exchange, identity="alice", **kwargs) -> str:
    options = {**exchange.config.token_kwargs(), "ttl": 600, **kwargs}
    return mint(identity=identity, **options)


async def test_register_and_unregister(make_phone, exchange, wire):
    alice = await make_phone("alice", register=False)
    events = Events(alice.device, DEVICE_EVENTS)
    assert alice.device.state is DeviceState.UNREGISTERED
    await alice.device.register()
    assert alice.device.state is DeviceState.REGISTERED
    assert events.names() == ["registering", "registered"]
    assert alice.device.identity == "alice"
    assert [s.identity for s in exchange.registrations.of("alice")] == ["alice"]
    assert wire.types_from("alice") == ["listen", "register"]
    assert wire.got("alice", "register") == [{"media": {"audio": True}}]
    with pytest.raises(InvalidStateError):
        await alice.device.register()

    await alice.device.unregister()
    assert alice.device.state is DeviceState.UNREGISTERED
    assert events.names() == ["registering", "registered", "unregistered"]
    assert exchange.registrations.of("alice") == []
    assert wire.got("alice", "register")[-1] == {"media": {"audio": False}}
    with pytest.raises(InvalidStateError):
        await alice.device.unregister()

    # Unregistered: calls to alice are refused, but alice may still place calls.
    bob = await make_phone("bob")
    outgoing = await bob.device.connect({"To": "alice"})
    out = Events(outgoing)
    (error,) = await out.wait("error")
    assert error.code == 31480
    await alice.device.register()
    assert events.names()[-2:] == ["registering", "registered"]
    outgoing = await alice.device.connect({"To": "bob"})
    incoming = await bob.next_call()
    assert incoming.parameters["From"] == "client:alice"
    incoming.reject()


async def test_registration_is_repeated_while_registered(make_phone, wire):
    alice = await make_phone("alice", register_interval=0.15)
    events = Events(alice.device, DEVICE_EVENTS)
    await until(lambda: len(wire.got("alice", "register")) >= 4, 3, "repeated registers")
    assert alice.device.state is DeviceState.REGISTERED
    assert events.names() == []  # a repeated register changes no state
    assert all(p == {"media": {"audio": True}} for p in wire.got("alice", "register"))
    # Unregistering stops the repetition.
    await alice.device.unregister()
    sent = len(wire.got("alice", "register"))
    await asyncio.sleep(0.5)  # over three intervals in which no register may go out
    assert len(wire.got("alice", "register")) == sent
    assert alice.device.state is DeviceState.UNREGISTERED


async def test_default_register_interval_is_thirty_seconds(exchange):
    device = Device(token_for(exchange), signaling_url=exchange.url)
    assert device.options.register_interval == 30.0
    await device.destroy()


async def test_destroy(make_phone, exchange):
    alice = await make_phone("alice")
    events = Events(alice.device, DEVICE_EVENTS)
    await alice.device.destroy()
    assert alice.device.state is DeviceState.DESTROYED
    assert events.names() == ["destroyed"]
    await until(lambda: exchange.registrations.of("alice") == [], 2, "registration removed")
    with pytest.raises(InvalidStateError):
        await alice.device.register()
    with pytest.raises(InvalidStateError):
        await alice.device.connect({"To": "echo"})
    await alice.device.destroy()  # idempotent
    assert events.names() == ["destroyed"]


@pytest.mark.parametrize("exchange_cfg", [{"reconnect_grace": 5.0}], indirect=True)
async def test_destroy_mid_call_hangs_up_at_once(make_phone):
    # The grace is long here: the far end must learn of the hang-up from the hangup frame,
    # not from the exchange giving up on a vanished socket.
    alice = await make_phone("alice")
    bob = await make_phone("bob")
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    await alice.device.destroy()
    assert outgoing.status() is CallStatus.CLOSED
    assert out.names() == ["ringing", "accept", "disconnect"]
    await inc.wait("disconnect", timeout=1)
    assert incoming.status() is CallStatus.CLOSED


async def test_destroy_while_ringing_cancels(make_phone):
    alice = await make_phone("alice")
    bob = await make_phone("bob")
    outgoing, incoming, out, inc = await place_ringing(alice, bob)
    await bob.device.destroy()  # the callee's device goes away: its ringing call is ignored
    assert inc.names() == ["cancel"]
    (error,) = await out.wait("error")
    assert error.code == 31480  # no device of bob is left to answer
    await out.wait("disconnect")


@pytest.mark.parametrize(("kind", "code", "wire"), [("bad-signature", 20101, 31204),
                                                    ("expired", 20104, 31205),
                                                    ("other-account", 20101, 31204)])
async def test_register_with_a_refused_token_raises_the_servers_error(exchange, kind, code,
                                                                      wire):
    if kind == "bad-signature":
        token = token_for(exchange, api_key_secret="not-the-exchange-secret-0123456789")
    elif kind == "expired":
        token = token_for(exchange, ttl=-60)
    else:
        token = token_for(exchange, account_sid="AC" + "0" * 32)
    device = Device(token, signaling_url=exchange.url, ice_addresses=LOOPBACK)
    events = Events(device, DEVICE_EVENTS)
    try:
        with pytest.raises(TwilioError) as raised:
            await asyncio.wait_for(device.register(timeout=3), 2)
        assert raised.value.code == code and raised.value.original_error["code"] == wire
        assert device.state is DeviceState.UNREGISTERED
        assert events.names()[:3] == ["registering", "error", "unregistered"] or \
            events.names()[:3] == ["registering", "unregistered", "error"]
        assert events.all("error")[0][0].code == code
        # Still refused on a second attempt, and placing a call is refused the same way.
        with pytest.raises(TwilioError) as again:
            await asyncio.wait_for(device.register(timeout=3), 2)
        assert again.value.code == code
        with pytest.raises(TwilioError) as calling:
            await asyncio.wait_for(device.connect({"To": "echo"}, timeout=3), 2)
        assert calling.value.code == code
        # A good token fixes it.
        device.update_token(token_for(exchange))
        await asyncio.wait_for(device.register(timeout=3), 3)
        assert device.state is DeviceState.REGISTERED
    finally:
        await device.destroy()
    assert exchange.registrations.of("alice") == []


async def test_token_will_expire_fires_before_expiry(exchange):
    device = Device(token_for(exchange, ttl=12), signaling_url=exchange.url,
                    token_refresh_ms=11_500)
    events = Events(device, DEVICE_EVENTS)
    try:
        await device.register()
        (emitter,) = await events.wait("tokenWillExpire", timeout=3)
        assert emitter is device
    finally:
        await device.destroy()
