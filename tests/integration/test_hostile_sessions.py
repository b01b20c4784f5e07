"""A hostile client's sessions (issue 14): what it can make the exchange hold is capped, a
frozen or silent client is dropped, a client that does not read is cut off, a token that runs
out stops working, and no frame (deep, ill-typed, not Unicode) ends a session or reaches the
log unescaped. Each test is named after what the attacker tries."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time

import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from piphone.errors import InvalidStateError
from piphone.exchange import config as exchange_config
from piphone.voice import CallStatus, Device, DeviceState, protocol
from piphone.voice.tokens import mint

from ..conftest import LOOPBACK, until
from .helpers import DEVICE_EVENTS, Events, place_and_answer
from .test_bad_input import FakeServer, Raw, serves_a_fresh_call, token_for

pytestmark = pytest.mark.net

DEEP = "[" * 1000 + "]" * 1000  # ~1,000 nested arrays in a 2 KB frame


@pytest.fixture
async def sockets(exchange):
    """open_(listen_as=None | identity, ttl=600) -> Raw; every socket closed at the end."""
    opened: list = []

    async def open_(listen_as: str | None = None, ttl: int = 600, **options) -> Raw:
        ws = await connect(exchange.url, open_timeout=2, max_size=None, **options)
        opened.append(ws)
        client = Raw(ws)
        if listen_as is not None:
            await client.send("listen", token=token_for(exchange, listen_as, ttl=ttl))
            await client.expect("connected")
        return client

    yield open_
    for ws in opened:
        await ws.close()


async def closed_with(client: Raw, timeout: float = 3.0) -> int | None:
    """Read until the server closes the socket; its close code."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await client.frame(timeout)
    return closed.value.rcvd.code if closed.value.rcvd is not None else None


def lines(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# --- caps on sockets and registrations ---------------------------------------------------

async def test_400_unauthenticated_sockets_from_one_address_are_refused(sockets, exchange,
                                                                        caplog):
    cap = exchange.config.limits.max_unauthenticated_per_address
    held = [await sockets() for _ in range(cap)]
    refused = []
    for _ in range(40):
        client = await sockets()
        error = await client.expect_error(31206)
        assert "not sent a valid token" in error["error"]["message"]
        refused.append(await closed_with(client))
    assert refused == [1013] * 40
    assert len(exchange.sessions) == cap
    assert len(lines(caplog, "refused")) == 1  # once, not per attempt
    assert "127.0.0.1" in lines(caplog, "refused")[0]
    # One of the held sockets authenticates: there is room for one more without a token.
    await held[0].send("listen", token=token_for(exchange, "mallory"))
    await held[0].expect("connected")
    extra = await sockets()
    await extra.send("listen", token=token_for(exchange, "mallory"))
    await extra.expect("connected")
    await held[1].ws.close()
    await until(lambda: len(exchange.sessions) == cap, 2, "the closed socket forgotten")


@pytest.mark.parametrize("exchange_cfg", [{"max_sockets_per_address": 5}], indirect=True)
async def test_many_authenticated_sockets_from_one_address_are_refused(sockets, exchange):
    for _ in range(5):
        await sockets("mallory")
    client = await sockets()
    error = await client.expect_error(31206)
    assert "5 sockets from this address" in error["error"]["message"]
    assert await closed_with(client) == 1013
    assert len(exchange.sessions) == 5


@pytest.mark.parametrize("exchange_cfg", [{"max_sessions": 3}], indirect=True)
async def test_more_sessions_than_the_exchange_holds_are_refused(sockets, exchange,
                                                                 make_phone):
    for _ in range(3):
        await sockets("mallory")
    client = await sockets()
    await client.expect_error(31206)
    assert await closed_with(client) == 1013
    # A Device that is refused reports the SDK's RateExceededError and gets in once there
    # is room again.
    device = Device(token_for(exchange, "alice"), signaling_url=exchange.url,
                    ice_addresses=LOOPBACK)
    events = Events(device, DEVICE_EVENTS)
    try:
        with pytest.raises(Exception):  # noqa: B017 (no 'connected' within the time)
            await device.register(timeout=1)
        assert 31206 in [e[0].code for e in events.all("error")]
    finally:
        await device.destroy()


async def test_150_registrations_of_one_identity_are_capped(sockets, exchange, caplog):
    cap = exchange.config.limits.max_registrations_per_identity
    clients = [await sockets("mallory") for _ in range(cap + 5)]
    for index, client in enumerate(clients):
        await client.send("register", media={"audio": True})
        if index < cap:
            await client.expect("ready")
        else:
            error = await client.expect_error(31206)
            assert f"{cap} devices are registered" in error["error"]["message"]
            await client.expect("offline")
    assert exchange.registrations.count("mallory") == cap
    assert len(lines(caplog, "register refused")) == 1
    # A registered one re-registers (its 30 s refresh) without taking a second place, and
    # once one leaves, a waiting one gets in.
    await clients[0].still_serves()
    await clients[1].send("register", media={"audio": False})
    await clients[1].expect("offline")
    await clients[-1].still_serves()
    assert exchange.registrations.count("mallory") == cap


# --- liveness ------------------------------------------------------------------------------

LIVELY = {"heartbeat_interval": 0.2, "heartbeat_timeout": 1.0}


@pytest.mark.parametrize("exchange_cfg", [LIVELY], indirect=True)
async def test_a_frozen_client_is_dropped_and_calls_to_it_stop_ringing(sockets, exchange,
                                                                       make_phone, caplog):
    frozen = await sockets("bob")
    await frozen.still_serves()
    alice = await make_phone("alice")
    # From here bob reads nothing and echoes no heartbeat.
    call = await alice.device.connect({"To": "bob"})
    events = Events(call)
    await events.wait("ringing")
    started = time.monotonic()
    (error,) = await events.wait("error", timeout=3)
    assert error.code == 31480  # no device of bob's answered: not ringing for a minute
    assert time.monotonic() - started < 1.5
    await events.wait("disconnect")
    assert exchange.registrations.of("bob") == []
    assert lines(caplog, "silent for 1 s")
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await frozen.ws.recv()
    assert frozen.ws.close_code == 4001


@pytest.mark.parametrize("exchange_cfg", [LIVELY], indirect=True)
async def test_a_client_that_echoes_heartbeats_stays(make_phone, exchange):
    bob = await make_phone("bob", tone=880)
    alice = await make_phone("alice")
    await asyncio.sleep(3 * exchange.config.limits.heartbeat_timeout)
    assert exchange.registrations.count("bob") == 1 and len(exchange.sessions) == 2
    await place_and_answer(alice, bob)


# --- a client that does not read, or sends garbage ------------------------------------------

@pytest.mark.parametrize("exchange_cfg", [{"send_queue": 16}], indirect=True)
async def test_a_client_that_never_reads_is_cut_off(exchange, caplog):
    # A small receive window and no reading: every 'ready' the exchange answers piles up.
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", exchange.port))
    ws = await connect(exchange.url, sock=raw, max_queue=1, max_size=None, open_timeout=2)
    try:
        await ws.send(protocol.encode("listen", token=token_for(exchange, "mallory")))
        register = protocol.encode("register", media={"audio": True})
        sent = 0
        with pytest.raises(websockets.ConnectionClosed):
            while sent < 200_000:
                await ws.send(register)
                sent += 1
                if sent % 100 == 0:
                    await asyncio.sleep(0)  # let the exchange read
        assert sent < 200_000
        await until(lambda: not exchange.sessions, 3, "the session gone")
        assert exchange.registrations.of("mallory") == []
        assert len(lines(caplog, "does not read its frames")) == 1
    finally:
        ws.transport.abort()


async def test_a_client_sending_garbage_is_disconnected(sockets, exchange, caplog):
    client = await sockets("mallory")
    limit = exchange.config.limits.max_bad_frames
    for _ in range(limit):
        await client.ws.send("\x00garbage")
        await client.expect_error(31100)
    await client.ws.send("\x00garbage")
    await client.expect_error(31100)
    await client.expect_error(31206)
    assert await closed_with(client) == 1008
    # One line for the garbage (not one per frame) and one for the disconnection.
    assert len(lines(caplog, "malformed frame")) == 1
    assert len(lines(caplog, "refused frames a minute; disconnecting")) == 1


# --- frames that used to end a session -------------------------------------------------------

@pytest.mark.parametrize("authenticated", [False, True])
async def test_a_frame_nested_a_thousand_deep_does_not_end_the_session(sockets, exchange,
                                                                       make_phone,
                                                                       authenticated):
    client = await sockets("mallory" if authenticated else None)
    await client.ws.send(DEEP)
    error = await client.expect_error(31100)
    assert "nests deeper" in error["error"]["message"]
    if not authenticated:
        await client.send("listen", token=token_for(exchange, "mallory"))
        await client.expect("connected")
    await client.still_serves()
    await serves_a_fresh_call(make_phone)


async def test_a_server_frame_nested_a_thousand_deep_leaves_the_device_working(exchange):
    fake = FakeServer([DEEP, '{"type": "ready", "payload": {"x": ' + DEEP + "}}"])
    async with serve(fake.handler, "127.0.0.1", 0, max_size=None) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/signal"
        device = Device(token_for(exchange, "alice"), signaling_url=url,
                        ice_addresses=LOOPBACK)
        try:
            await asyncio.wait_for(device.register(timeout=3), 5)
            await device.unregister(timeout=3)  # the stream still reads and answers
            await device.register(timeout=3)
            assert device.state is DeviceState.REGISTERED
            assert device._stream._task is not None and not device._stream._task.done()
        finally:
            await device.destroy()


async def test_an_invite_whose_params_is_not_a_string_gets_31100(sockets, exchange):
    client = await sockets("mallory")
    await client.send("invite", callsid="TJS1", sdp="v=0", twilio={"params": {"To": "echo"}})
    error = await client.expect_error(31100)
    assert "params" in error["error"]["message"]
    await client.still_serves()
    assert not exchange.calls.calls


@pytest.mark.parametrize("text", [
    '{"type": "listen", "payload": {"token": "eyJ\\ud800"}}',
    '{"type": "invite", "payload": {"callsid": "TJS\\ud800", "sdp": "v=0", '
    '"twilio": {"params": "To=echo"}}}',
], ids=["token", "callsid"])
async def test_a_lone_surrogate_gets_31100_and_files_no_call(sockets, exchange, text):
    client = await sockets("mallory")
    await client.ws.send(text)
    error = await client.expect_error(31100)
    assert "not valid Unicode" in error["error"]["message"]
    await client.still_serves()
    assert not exchange.calls.calls and exchange.records.log.recent() == []


async def test_a_bug_while_decoding_does_not_end_the_session(sockets, monkeypatch):
    client = await sockets("mallory")
    real = protocol.decode

    def broken(text, frames):
        if "boom" in text:
            raise RecursionError("maximum recursion depth exceeded")
        return real(text, frames)

    monkeypatch.setattr(protocol, "decode", broken)
    await client.ws.send('{"type": "boom"}')
    await client.expect_error(31100)
    await client.still_serves()


async def test_a_bug_while_handling_a_frame_is_a_logged_protocol_error(sockets, exchange,
                                                                       monkeypatch, caplog):
    client = await sockets("mallory")

    def broken(session, frame):
        raise KeyError("eve\nCRITICAL forged")

    monkeypatch.setattr(exchange.calls, "handle", broken)
    await client.send("hangup", callsid="CA1")
    error = await client.expect_error(31000)
    assert error["error"]["message"] == "internal error handling hangup"
    await client.still_serves()
    assert lines(caplog, "error handling hangup")


async def test_a_bad_frame_echoes_no_client_text_unbounded(sockets, caplog):
    client = await sockets("mallory")
    await client.ws.send('{"type": "eve\\nWATCHDOG=trigger' + "x" * 60_000 + '"}')
    error = await client.expect_error(31100)
    message = error["error"]["message"]
    assert len(message) < 300 and "\n" not in message
    assert "eve\\nWATCHDOG=trigger" in message
    for record in caplog.records:
        assert len(record.getMessage()) < 1000 and "\n" not in record.getMessage()


# --- tokens that run out ---------------------------------------------------------------------

async def test_a_session_whose_token_expired_is_no_longer_reachable(sockets, exchange,
                                                                    make_phone):
    expiring = await sockets("bob", ttl=2)
    await expiring.still_serves()
    error = await expiring.expect_error(31205)
    await expiring.expect("offline")
    assert exchange.registrations.of("bob") == []
    # It may not register or call until it sends a fresh token...
    await expiring.send("register", media={"audio": True})
    await expiring.expect_error(31205)
    await expiring.send("invite", callsid="TJS1", sdp="v=0", twilio={"params": "To=echo"})
    await expiring.expect_error(31205)
    alice = await make_phone("alice")
    call = await alice.device.connect({"To": "bob"})
    (refused,) = await Events(call).wait("error")
    assert refused.code == 31480
    # ...and then it may (update_token).
    await expiring.send("listen", token=token_for(exchange, "bob"))
    await expiring.expect("connected")
    await expiring.still_serves()
    assert error["error"]["message"] == "access token expired"


async def test_a_device_that_updates_its_token_in_time_stays_registered(exchange):
    device = Device(token_for(exchange, "alice", ttl=2), signaling_url=exchange.url,
                    ice_addresses=LOOPBACK)
    events = Events(device, DEVICE_EVENTS)
    try:
        await device.register()
        device.update_token(token_for(exchange, "alice", ttl=600))
        await asyncio.sleep(3)  # past the first token's exp
        assert events.all("error") == [] and device.state is DeviceState.REGISTERED
        assert exchange.registrations.count("alice") == 1
    finally:
        await device.destroy()


async def test_a_device_whose_token_expires_hears_20104_and_is_unregistered(exchange):
    device = Device(token_for(exchange, "alice", ttl=2), signaling_url=exchange.url,
                    ice_addresses=LOOPBACK)
    events = Events(device, DEVICE_EVENTS)
    try:
        await device.register()
        (error, _) = await events.wait("error", timeout=4)
        assert error.code == 20104 and error.original_error["code"] == 31205
        await events.wait("unregistered")
        assert exchange.registrations.of("alice") == []
    finally:
        await device.destroy()


async def test_a_call_going_on_is_not_cut_when_the_token_expires(make_phone, exchange):
    bob = await make_phone("bob", tone=880)
    alice = Device(token_for(exchange, "alice", ttl=2), signaling_url=exchange.url,
                   ice_addresses=LOOPBACK)
    try:
        expiry = Events(alice, ("error",))
        call = await alice.connect({"To": "bob"})
        events = Events(call)  # before the far end accepts: our side may open first
        incoming = await bob.next_call()
        await asyncio.wait_for(incoming.accept(), 5)
        await events.wait("accept")
        await expiry.wait("error", timeout=5)  # the token expired: 31205, heard as 20104
        assert call.status() is CallStatus.OPEN and incoming.status() is CallStatus.OPEN
        call.disconnect()  # hanging up is still allowed
        await until(lambda: incoming.status() is CallStatus.CLOSED, 3, "bob's call ended")
    finally:
        await alice.destroy()



# --- the client: one outgoing call at a time, as the SDK -----------------------------------------

async def test_four_concurrent_connects_on_one_device_get_invalid_state(make_phone, exchange):
    alice = await make_phone("alice")
    bob = await make_phone("bob", tone=880)
    results = await asyncio.wait_for(asyncio.gather(
        *(alice.device.connect({"To": "echo"}) for _ in range(4)), return_exceptions=True), 10)
    calls = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(calls) == 1 and len(refused) == 3
    assert all(isinstance(r, InvalidStateError) and str(r) == "A Call is already active"
               for r in refused)
    (call,) = calls  # the one call is not left 'connecting' (it may be open already)
    await until(lambda: call.status() is CallStatus.OPEN, 10, "the one call to open")
    with pytest.raises(InvalidStateError, match="A Call is already active"):
        await alice.device.connect({"To": "bob"})
    call.disconnect()
    await call.wait_closed()
    # A call ringing in (not accepted) does not block a call out; an accepted one does.
    carol = await make_phone("carol")
    ringing = await carol.device.connect({"To": "alice"})
    ringing_events = Events(ringing)
    incoming = await alice.next_call()
    out = await alice.device.connect({"To": "bob"})
    await bob.next_call()
    out.disconnect()
    await out.wait_closed()
    await asyncio.wait_for(incoming.accept(), 5)
    await ringing_events.wait("accept")
    with pytest.raises(InvalidStateError):
        await alice.device.connect({"To": "bob"})


# --- what reaches the journal --------------------------------------------------------------------

LOG_LINE = re.compile(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


async def test_a_client_cannot_forge_or_flood_the_exchanges_log(tmp_path):
    """`piphone exchange` as systemd runs it: every stderr line (one journal entry each) is
    one record of ours, however the client's text is made."""
    config = exchange_config.write_starter(tmp_path / "exchange.toml")
    config.write_text(config.read_text().replace("port = 8089", "port = 0"))
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "piphone", "exchange", "--config", str(config),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ,
                                                                 PYTHONUNBUFFERED="1"))
    try:
        banner = (await asyncio.wait_for(server.stdout.readline(), 15)).decode()
        url = banner.split()[-1]
        token = mint(identity="mallory", **exchange_config.load(config).token_kwargs())
        # A starter that serves wss:// has its own CA beside it.
        tls = (ssl.create_default_context(cafile=str(config.with_name("exchange-ca.pem")))
               if url.startswith("wss://") else None)
        async with connect(url, max_size=None, ssl=tls) as ws:
            client = Raw(ws)
            await client.send("listen", token=token)
            await client.expect("connected")
            forged = "\nCRITICAL piphone: forged\nWATCHDOG=trigger\r\x1b[2K"
            await ws.send(json.dumps({"type": "x" + forged + "y" * 60_000}))
            await client.send("hangup", callsid="CA1" + forged)
            await client.send("listen", token="eyJ" + forged)
            await client.send("register", media={"audio": True})
            while (await client.frame())["type"] != "ready":
                pass  # the exchange handled every frame before this one
    finally:
        server.terminate()
        _, err = await asyncio.wait_for(server.communicate(), 10)
    lines = err.decode().splitlines()
    assert any("malformed frame" in line for line in lines)
    for line in lines:
        assert LOG_LINE.match(line) and len(line) < 1000, line[:300]
