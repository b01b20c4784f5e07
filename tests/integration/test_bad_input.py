"""Bad input on the wire: the exchange and the Device drop it, answer as the protocol says, and
keep serving. Raw WebSocket clients play the misbehaving client; a fake server plays a
misbehaving exchange."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from piphone.voice import CallStatus, Device, DeviceState, protocol
from piphone.voice.signaling import SignalingState
from piphone.voice.tokens import mint

from ..conftest import LOOPBACK, until
from .helpers import DEVICE_EVENTS, Events, hears, place_and_answer

pytestmark = pytest.mark.net


def token_for(exchange, identity="mallory", **kwargs) -> str:
    return mint(identity=identity, **{**exchange.config.token_kwargs(), "ttl": 600, **kwargs})


class Raw:
    """A hand-driven client: sends what it is told, reads frames (skipping heartbeats)."""

    def __init__(self, ws) -> None:
        self.ws = ws

    async def send(self, type_: str, **payload) -> None:
        await self.ws.send(protocol.encode(type_, **payload))

    async def frame(self, timeout: float = 2.0) -> dict:
        while True:
            text = await asyncio.wait_for(self.ws.recv(), timeout)
            if text != protocol.HEARTBEAT:
                return json.loads(text)

    async def expect(self, type_: str, timeout: float = 2.0) -> dict:
        frame = await self.frame(timeout)
        assert frame["type"] == type_, frame
        return frame["payload"]

    async def expect_error(self, code: int) -> dict:
        payload = await self.expect("error")
        assert payload["error"]["code"] == code, payload
        return payload

    async def still_serves(self) -> None:
        """The session answers a register: nothing before broke it."""
        await self.send("register", media={"audio": True})
        await self.expect("ready")


@pytest.fixture
async def raw(exchange) -> AsyncIterator:
    sockets = []

    async def open_(listen_as: str | None = "mallory") -> Raw:
        ws = await connect(exchange.url, open_timeout=2, max_size=None)
        sockets.append(ws)
        client = Raw(ws)
        if listen_as is not None:
            await client.send("listen", token=token_for(exchange, listen_as))
            payload = await client.expect("connected")
            assert payload["token"]["identity"] == listen_as
        return client

    yield open_
    for ws in sockets:
        await ws.close()


async def serves_a_fresh_call(make_phone, caller="alice", callee="bob") -> None:
    a = await make_phone(caller, tone=440)
    b = await make_phone(callee, tone=880)
    outgoing, incoming, out, inc = await place_and_answer(a, b)
    await hears(a, 880)
    await hears(b, 440)
    outgoing.disconnect()
    await inc.wait("disconnect")


# --- the exchange ------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "{not json",
    "[1, 2]",
    '"listen"',
    '{"payload": {}}',
    '{"type": 7, "payload": {}}',
    '{"type": "teleport", "payload": {}}',
    '{"type": "register", "payload": []}',
    '{"type": "register", "payload": {"media": "yes"}}',
    '{"type": "register", "payload": {}}',
    '{"type": "invite", "payload": {"callsid": 5, "sdp": "v=0"}}',
    '{"type": "invite", "payload": {"callsid": "TJS1", "sdp": "v=0", "preflight": "no"}}',
    '{"type": "hangup", "payload": {"callsid": null}}',
    '{"type": "dtmf", "payload": {"callsid": "CA1", "dtmf": 1}}',
    '{"type": "listen", "payload": {"token": true}}',
], ids=lambda t: t[:40])
async def test_malformed_frames_get_31100_and_the_session_goes_on(raw, text):
    client = await raw()
    await client.ws.send(text)
    payload = await client.expect_error(31100)
    assert "malformed frame" in payload["error"]["message"]
    await client.still_serves()


async def test_binary_frames_are_refused(raw):
    client = await raw()
    await client.ws.send(b'{"type": "register", "payload": {"media": {"audio": true}}}')
    await client.expect_error(31100)
    await client.still_serves()


async def test_frames_over_64_kib_are_dropped_and_far_over_close_the_socket(raw, exchange,
                                                                            make_phone):
    client = await raw()
    big = protocol.encode("register", media={"audio": True, "pad": "x" * (70 * 1024)})
    await client.ws.send(big)
    payload = await client.expect_error(31100)
    assert "limit" in payload["error"]["message"]
    await client.still_serves()
    # Beyond what the socket accepts at all (256 KiB): the connection is closed, the exchange
    # goes on serving everyone else.
    await client.ws.send("x" * (300 * 1024))
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await client.frame()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    await until(lambda: not exchange.registrations.of("mallory"), 2, "session dropped")
    await serves_a_fresh_call(make_phone)


async def test_frames_before_listen_are_refused_with_31201(raw):
    client = await raw(listen_as=None)
    await client.send("register", media={"audio": True})
    await client.expect_error(31201)
    await client.send("invite", callsid="TJS1", sdp="v=0", twilio={"params": "To=echo"})
    await client.expect_error(31201)
    await client.send("listen", token="")
    await client.expect_error(31204)  # an empty token is no token


@pytest.mark.parametrize(("kind", "code"), [("bad", 31204), ("expired", 31205),
                                            ("not-a-jwt", 31204)])
async def test_refused_token_gets_an_error_and_a_fresh_token_may_follow(
        raw, exchange, make_phone, kind, code):
    client = await raw(listen_as=None)
    token = {"bad": token_for(exchange, api_key_secret="z" * 32),
             "expired": token_for(exchange, ttl=-60),
             "not-a-jwt": "eyJhbGciOi.garbage.token"}[kind]
    await client.send("listen", token=token)
    await client.expect_error(code)
    # The socket stays open (no reconnect loop) and a good token is taken on it.
    await client.send("listen", token=token_for(exchange, "mended"))
    assert (await client.frame())["type"] == "connected"
    await serves_a_fresh_call(make_phone)


async def test_a_socket_without_a_valid_token_is_closed(raw, monkeypatch):
    from piphone.exchange.server import ClientSession

    monkeypatch.setattr(ClientSession, "AUTH_TIMEOUT", 0.3)
    client = await raw(listen_as=None)
    await client.send("listen", token="eyJhbGciOi.garbage.token")
    await client.expect_error(31204)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await client.frame()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003


async def test_a_new_token_must_keep_the_identity(raw, exchange):
    client = await raw()
    await client.send("listen", token=token_for(exchange, "someone-else"))
    await client.expect_error(31204)
    await client.send("listen", token=token_for(exchange, "mallory"))
    await client.expect("connected")
    await client.still_serves()


async def test_frames_for_unknown_calls_are_ignored(raw, wire):
    client = await raw()
    for type_ in ("hangup", "reject", "answer", "dtmf", "reinvite"):
        payload = {"callsid": "CAdoesnotexist"}
        if type_ in ("answer", "reinvite"):
            payload["sdp"] = "v=0"
        if type_ == "dtmf":
            payload["dtmf"] = "1"
        await client.send(type_, **payload)
    await client.still_serves()
    assert [t for _, t, _ in wire.sent if t not in ("connected", "ready")] == []


@pytest.mark.parametrize("to", ["echo", "bob"])
async def test_garbage_sdp_in_an_invite_gets_a_hangup_with_an_error(raw, make_phone, to):
    bob = await make_phone("bob")
    client = await raw()
    await client.send("invite", callsid="TJSgarbage", sdp="this is not an SDP",
                      twilio={"params": f"To={to}"})
    payload = await client.expect("hangup")
    assert payload["callsid"] == "TJSgarbage"
    assert payload["error"]["code"] == 31100
    assert bob.incoming.empty()  # the callee never rang
    await client.still_serves()
    await serves_a_fresh_call(make_phone, "alice", "bob")


async def test_invalid_digits_from_a_client_get_31100(make_phone, wire):
    alice = await make_phone("alice")
    bob = await make_phone("bob")
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    alice.device._stream.send("dtmf", {"callsid": outgoing.sid, "dtmf": "12x"})
    (error,) = await out.wait("error")
    assert error.code == 31100
    assert inc.all("dtmf") == []
    assert outgoing.status() is CallStatus.OPEN  # an error frame does not end the call
    outgoing.send_digits("9")
    await inc.wait("dtmf")
    assert inc.all("dtmf") == [("9",)]


async def test_a_client_that_vanishes_mid_call_is_hung_up_after_the_grace(make_phone, exchange):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880)
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    loop = asyncio.get_running_loop()
    # No hangup, no close frame, and no reconnection (the phone is gone for good).
    alice.device._stream._set_state(SignalingState.CLOSED)
    alice.device._stream._ws.transport.abort()
    gone_at = loop.time()
    await inc.wait("disconnect", timeout=3)
    waited = loop.time() - gone_at
    assert exchange.config.reconnect_grace - 0.1 <= waited < exchange.config.reconnect_grace + 1
    assert incoming.status() is CallStatus.CLOSED
    assert inc.names() == ["accept", "disconnect"]
    assert not exchange.calls.calls
    # bob takes a fresh call from another client at once.
    carol = await make_phone("carol", tone=660)
    outgoing2, incoming2, *_ = await place_and_answer(carol, bob)
    await hears(bob, 660)
    await hears(carol, 880)


# --- the Device against a misbehaving server ------------------------------------------------

GARBAGE = [
    "{not json",
    "[]",
    "null",
    '{"type": 5}',
    '{"type": "bogus", "payload": {}}',
    '{"type": "ready", "payload": []}',
    '{"type": "ringing", "payload": {"callsid": 5}}',
    '{"type": "answer", "payload": {"callsid": "TJSx"}}',
    '{"type": "hangup", "payload": {"callsid": "CAnope", "error": "boom"}}',
    '{"type": "hangup", "payload": {"callsid": "CAnope"}}',
    '{"type": "cancel", "payload": {"callsid": "CAnope"}}',
    '{"type": "dtmf", "payload": {"callsid": "CAnope", "dtmf": "1"}}',
    '{"type": "error", "payload": {"error": {"code": "x", "message": 5}}}',
    '{"type": "connected", "payload": {"token": {"ttl": "soon", "identity": "eve"}}}',
    '{"type": "invite", "payload": {"callsid": "CAgarbage", "sdp": "not an sdp"}}',
    '{"type": "' + "x" * (70 * 1024) + '"}',
]


class FakeServer:
    """Speaks just enough of the protocol, with garbage before every real frame."""

    def __init__(self, garbage: list[str]) -> None:
        self.garbage = garbage
        self.received: list[dict] = []
        self.heartbeats_echoed = 0

    async def handler(self, ws) -> None:
        async for text in ws:
            if text == protocol.HEARTBEAT:
                self.heartbeats_echoed += 1
                continue
            frame = json.loads(text)
            self.received.append(frame)
            for junk in self.garbage:
                await ws.send(junk)
            await ws.send(b"\x00binary\xff")
            await ws.send(protocol.HEARTBEAT)
            if frame["type"] == "listen":
                await ws.send(protocol.encode("connected", region="fake",
                                              token={"identity": "alice", "ttl": 600}))
            elif frame["type"] == "register":
                audio = frame["payload"]["media"]["audio"]
                await ws.send(protocol.encode("ready" if audio else "offline"))

    def types(self) -> list[str]:
        return [f["type"] for f in self.received]


@pytest.fixture
async def fake_server() -> AsyncIterator[tuple[FakeServer, str]]:
    fake = FakeServer(GARBAGE)
    async with serve(fake.handler, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        yield fake, f"ws://127.0.0.1:{port}/signal"


async def test_device_drops_garbage_from_the_server_and_keeps_working(fake_server, exchange):
    fake, url = fake_server
    device = Device(token_for(exchange, "alice"), signaling_url=url, ice_addresses=LOOPBACK)
    events = Events(device, DEVICE_EVENTS)
    incoming: list = []
    device.on("incoming", incoming.append)
    try:
        await asyncio.wait_for(device.register(timeout=3), 5)
        assert device.state is DeviceState.REGISTERED
        # The invite with a garbage SDP is refused (reject) and reported, never offered.
        await until(lambda: "reject" in fake.types(), 3, "the garbage invite rejected")
        assert [f["payload"] for f in fake.received if f["type"] == "reject"][0] == \
            {"callsid": "CAgarbage"}
        assert incoming == []
        codes = [e[0].code for e in events.all("error")]
        assert 31100 in codes
        assert fake.heartbeats_echoed >= 1
        await device.unregister()
        assert device.state is DeviceState.UNREGISTERED
        await device.register()
        assert device.state is DeviceState.REGISTERED
        assert events.names().count("registered") == 2
        assert device.calls == []
    finally:
        await device.destroy()
    assert fake.types()[:2] == ["listen", "register"]
