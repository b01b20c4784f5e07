"""What a token allows, and whose key signed it (issue 14), through the real exchange:
grants and lifetimes enforced as at Twilio, identities checked on both sides, and per-phone
keys that sign for one identity only and are revoked without a restart."""

from __future__ import annotations

import time

import jwt
import pytest

from piphone import cli
from piphone.exchange import phones
from piphone.exchange.config import phone_keys_path
from piphone.exchange.server import ClientSession
from piphone.pcm import Tone
from piphone.voice import Device, DeviceState
from piphone.voice.errors import TwilioError
from piphone.voice.tokens import mint

from ..conftest import LOOPBACK, until
from .helpers import DEVICE_EVENTS, Events

pytestmark = pytest.mark.net


@pytest.fixture
async def device_with(exchange):
    """Devices on the exchange with a token the test makes; destroyed at the end."""
    devices: list[Device] = []

    def make(token: str) -> Device:
        device = Device(token, signaling_url=exchange.url, ice_addresses=LOOPBACK,
                        audio_source=lambda: Tone(440))
        devices.append(device)
        return device

    yield make
    for device in devices:
        await device.destroy()


def without_voice_grant(exchange, identity: str) -> str:
    claims = jwt.decode(mint(identity=identity, **exchange.config.token_kwargs()),
                        options={"verify_signature": False})
    del claims["grants"]["voice"]
    return jwt.encode(claims, exchange.config.api_key_secret, algorithm="HS256")


async def refused_call(device: Device, to: str) -> TwilioError:
    call = await device.connect({"To": to})
    events = Events(call)
    (error,) = await events.wait("error")
    await events.wait("disconnect")
    return error


async def test_a_token_that_does_not_allow_incoming_is_neither_registered_nor_rung(
        exchange, device_with, make_phone):
    token = mint(identity="bob", incoming_allow=False, ttl=600,
                 **exchange.config.token_kwargs())
    bob = device_with(token)
    with pytest.raises(TwilioError) as refused:
        await bob.register()
    assert refused.value.code == 20151  # AuthenticationFailed: the SDK's name for wire 31201
    assert refused.value.original_error["code"] == 31201
    assert bob.state is DeviceState.UNREGISTERED and exchange.registrations.of("bob") == []
    alice = await make_phone("alice")
    assert (await refused_call(alice.device, "bob")).code == 31480  # never rung
    # The same token still places calls: incoming and outgoing are separate grants.
    call = await bob.connect({"To": "echo"})
    await Events(call).wait("accept", timeout=10)


async def test_a_token_without_a_voice_grant_cannot_place_a_call(exchange, device_with,
                                                                 make_phone):
    await make_phone("bob")
    mallory = device_with(without_voice_grant(exchange, "mallory"))
    for to in ("bob", "echo"):
        error = await refused_call(mallory, to)
        assert error.code == 31002 and "does not allow outgoing calls" in error.message
    assert exchange.calls.calls == set()


async def test_a_token_that_lives_a_century_is_refused_at_listen(exchange, device_with):
    now = int(time.time())
    claims = jwt.decode(mint(identity="eve", **exchange.config.token_kwargs()),
                        options={"verify_signature": False})
    claims.update(nbf=now, exp=now + 100 * 365 * 86400)
    eve = device_with(jwt.encode(claims, exchange.config.api_key_secret, algorithm="HS256"))
    with pytest.raises(TwilioError) as refused:
        await eve.register()
    assert refused.value.code == 31207
    assert [s.identity for s in exchange.sessions] == [None]


async def test_a_caller_named_with_a_line_break_never_reaches_the_callee(
        exchange, make_phone, monkeypatch):
    """Had an exchange (or a man in the middle) sent it, the phone refuses an invite whose
    From could forge a log line or an sd_notify line, before showing or logging it."""
    send = ClientSession.send

    def forged(self, type_, **payload):
        if type_ == "invite":
            payload["parameters"] = {**payload["parameters"],
                                     "From": "client:eve\nWATCHDOG=trigger"}
        return send(self, type_, **payload)

    monkeypatch.setattr(ClientSession, "send", forged)
    alice = await make_phone("alice")
    bob = await make_phone("bob")
    bob_events = Events(bob.device, DEVICE_EVENTS)
    error = await refused_call(alice.device, "bob")
    assert error.code == 31603  # bob's phone declined it
    (bob_error, _call) = await bob_events.wait("error")
    assert bob_error.code == 31100 and "bad From" in bob_error.message
    assert bob.incoming.empty()


@pytest.mark.parametrize("to", ["client:eve\nWATCHDOG=trigger", "eve\r\nforged", "a" * 122])
async def test_a_call_to_what_cannot_be_an_identity_finds_no_route(make_phone, to):
    alice = await make_phone("alice")
    error = await refused_call(alice.device, to)
    assert error.code == 31404 and "\n" not in error.message


# --- per-phone keys ----------------------------------------------------------------------------
def phone_token(exchange, key: phones.PhoneKey, identity: str, ttl: int = 600) -> str:
    return mint(account_sid=exchange.config.account_sid, api_key_sid=key.sid,
                api_key_secret=key.secret, identity=identity, ttl=ttl)


async def test_a_stolen_phone_key_mints_for_its_own_identity_only(exchange, device_with):
    alice_key = phones.add(phone_keys_path(exchange.config), "alice")
    phones.add(phone_keys_path(exchange.config), "bob")
    # The thief of alice's phone signs a token for bob (to take bob's calls): refused.
    thief = device_with(phone_token(exchange, alice_key, "bob"))
    with pytest.raises(TwilioError) as refused:
        await thief.register()
    assert refused.value.code == 20101
    assert "its own identity only" in refused.value.message
    assert exchange.registrations.of("bob") == []
    # Alice's own tokens, signed with her key, work as the exchange's do.
    alice = device_with(phone_token(exchange, alice_key, "alice"))
    await alice.register()
    call = await alice.connect({"To": "echo"})
    await Events(call).wait("accept", timeout=10)


async def test_a_removed_phone_is_cut_off_at_once_without_a_restart(exchange, device_with,
                                                                    capsys):
    config = str(exchange.config.path)
    assert cli.main(["exchange", "add-phone", "alice", "--config", config]) == 0
    (key,) = phones.read(phone_keys_path(exchange.config)).values()
    alice = device_with(phone_token(exchange, key, "alice"))
    events = Events(alice, DEVICE_EVENTS)
    await alice.register()
    assert cli.main(["exchange", "remove-phone", "alice", "--config", config]) == 0
    assert "removed alice's key" in capsys.readouterr().out
    # The exchange notices the file changed (every 2 s) and ends the phone's session.
    (error, _) = await events.wait("error", timeout=phones.WATCH_INTERVAL + 3)
    assert error.code == 20101 and "revoked" in error.message
    await until(lambda: exchange.registrations.of("alice") == [], 3, "alice unregistered")
    # Nor can the removed key sign a fresh token.
    again = device_with(phone_token(exchange, key, "alice"))
    with pytest.raises(TwilioError) as refused:
        await again.register()
    assert refused.value.code == 20101 and "does not know" in refused.value.message


async def test_a_keys_file_others_can_read_stops_every_phone_key(exchange, device_with,
                                                                 caplog):
    """A revocation must never be missed: a keys file the exchange cannot trust is no keys."""
    path = phone_keys_path(exchange.config)
    key = phones.add(path, "alice")
    path.chmod(0o644)
    alice = device_with(phone_token(exchange, key, "alice"))
    with pytest.raises(TwilioError) as refused:
        await alice.register()
    assert refused.value.code == 20101
    assert "phone keys not accepted until the file is fixed" in caplog.text
    path.chmod(0o600)
    await device_with(phone_token(exchange, key, "alice")).register()
