"""The SDK's Device against the exchange: register, re-register, unregister, bad tokens."""

from __future__ import annotations

import time

import jwt
import pytest

from piphone.voice.tokens import mint

from ..conftest import until
from .conftest import pytestmark  # noqa: F401


async def test_register_and_unregister(sdk_phone, exchange, wire):
    phone = await sdk_phone("browser")
    await phone.wait_event("registered", source="device")
    assert exchange.registrations.of("browser")
    assert wire.got("browser", "register") == [{"media": {"audio": True}}]
    await phone.run("window.phone.unregister()")
    await phone.wait_event("unregistered", source="device")
    assert (await phone.state())["device"] == "unregistered"
    assert not exchange.registrations.of("browser")
    assert wire.got("browser", "register")[-1] == {"media": {"audio": False}}
    assert wire.to("browser", "offline") == [{}]


async def test_the_sdk_re_registers_every_30_s(sdk_phone, wire):
    phone = await sdk_phone("browser")
    await phone.wait_event("registered", source="device")
    started = time.monotonic()
    # Heartbeats every 5 s keep the SDK's 15 s watchdog quiet meanwhile.
    await until(lambda: len(wire.got("browser", "register")) >= 2, timeout=35,
                what="the SDK's second register")
    assert 28 <= time.monotonic() - started <= 33
    assert (await phone.state())["device"] == "registered"
    assert len(wire.got("browser", "listen")) == 1  # the same socket all along


@pytest.mark.parametrize("kind, code, sdk_code", [("wrong secret", 31204, 20101),
                                                 ("expired", 31205, 20104)])
async def test_a_bad_token_is_refused_by_the_exchange(sdk_phone, exchange, wire, kind, code,
                                                      sdk_code):
    kwargs = exchange.config.token_kwargs()
    if kind == "wrong secret":
        token = mint(identity="intruder", **{**kwargs, "api_key_secret": "x" * 40})
    else:
        claims = jwt.decode(mint(identity="late", **kwargs), options={"verify_signature": False})
        claims["exp"] = int(time.time()) - 120
        token = jwt.encode(claims, kwargs["api_key_secret"], algorithm="HS256",
                           headers={"cty": "twilio-fpa;v=1"})
    phone = await sdk_phone("browser", register=False, token=token)
    # register() waits for a 'connected' that never comes: start it, watch the events.
    await phone.run("() => { window.phone.register().catch(() => {}); }")
    error = (await phone.wait_event("error", source="device"))["args"][0]
    # The SDK reports AccessTokenInvalid/Expired with our wire code as the original error,
    # just as piphone's Device does (tests/integration/test_registration.py).
    assert error["code"] == sdk_code and error["originalCode"] == code
    # The refusal came from our exchange, on the wire, not from the SDK itself.
    assert [p["error"]["code"] for p in wire.to(None, "error")] == [code]
    assert not exchange.registrations.of("intruder") and not exchange.registrations.of("late")
