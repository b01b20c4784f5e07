"""Twilio's SDK against the exchange's limits (issue 14): it passes the liveness check by
echoing heartbeats, hears a token's expiry as Twilio's edge says it (31205, then offline),
re-registers by itself after updateToken, and hears a refused registration as
RateExceededError (31206)."""

from __future__ import annotations

import asyncio

import pytest

from piphone.voice.tokens import mint

from ..conftest import until
from .conftest import pytestmark  # noqa: F401


@pytest.mark.parametrize("exchange_cfg", [{"heartbeat_interval": 0.2,
                                           "heartbeat_timeout": 1.0}], indirect=True)
async def test_the_sdk_echoes_heartbeats_and_is_not_dropped(sdk_phone, exchange, wire):
    phone = await sdk_phone("browser")
    await phone.wait_event("registered", source="device")
    await asyncio.sleep(4 * exchange.config.limits.heartbeat_timeout)
    assert exchange.registrations.count("browser") == 1
    assert (await phone.state())["device"] == "registered"
    assert len(wire.got("browser", "listen")) == 1  # the same socket all along


async def test_the_sdk_hears_its_token_expire_and_re_registers_after_update(sdk_phone,
                                                                            exchange):
    kwargs = exchange.config.token_kwargs()
    phone = await sdk_phone("browser", token=mint(identity="browser", ttl=3, **kwargs))
    error = (await phone.wait_event("error", source="device", timeout=8))["args"][0]
    assert error["code"] == 20104 and error["originalCode"] == 31205
    await phone.wait_event("unregistered", source="device")
    assert exchange.registrations.of("browser") == []
    await phone.run("t => window.phone.device.updateToken(t)",
                    mint(identity="browser", ttl=600, **kwargs))
    await phone.wait_event("registered", source="device", count=2)
    await until(lambda: exchange.registrations.count("browser") == 1, 5, "re-registered")


@pytest.mark.parametrize("exchange_cfg", [{"max_registrations_per_identity": 1}],
                         indirect=True)
async def test_a_registration_over_the_cap_is_the_sdks_rate_exceeded_error(sdk_phone,
                                                                            exchange):
    first = await sdk_phone("browser")
    await first.wait_event("registered", source="device")
    second = await sdk_phone("browser", register=False)
    await second.run("() => { window.phone.register().catch(() => {}); }")
    error = (await second.wait_event("error", source="device"))["args"][0]
    assert error["code"] == 31206
    await second.wait_event("unregistered", source="device")
    assert exchange.registrations.count("browser") == 1
