"""Set-up shared by the appliance's integration tests: the piphone.toml + secrets.toml of a
test phone registered at the test exchange, the service running on mock pins, and a finger
that presses a mock button."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from gpiozero.pins.mock import MockFactory, MockPWMPin

from piphone.appliance import config as appliance_config
from piphone.appliance.service import Service


def write_phone_config(folder: Path, exchange, *, url: str | None = None,
                       identity: str = "alice", audio: str = 'headset = "none"',
                       phone: str = 'call_log = ""', rest: str = "") -> Path:
    """Write ``folder``/piphone.toml (account at ``exchange``; ``url`` overrides its address,
    e.g. a netfault relay) and its 0600 secrets.toml; ``audio`` and ``phone`` are the bodies of
    those sections, ``rest`` any further sections. Returns the piphone.toml path.

    Lines 1-12 keep a fixed layout (``phone``'s first line is line 12), so tests can name
    the line of a key they put in ``phone``."""
    cfg = exchange.config
    path = folder / "piphone.toml"
    path.write_text(f"""\
[account]
identity = "{identity}"
signaling_url = "{url or exchange.url}"
account_sid = "{cfg.account_sid}"
api_key_sid = "{cfg.api_key_sid}"
ice_addresses = ["127.0.0.1"]

[audio]
{audio}

[phone]
{phone}
{rest}""")
    secrets = folder / "secrets.toml"
    secrets.write_text(f'[account]\napi_key_secret = "{cfg.api_key_secret}"\n')
    os.chmod(secrets, 0o600)
    return path


def load_phone_config(folder: Path, exchange, **parts) -> appliance_config.ApplianceConfig:
    """write_phone_config, then the loaded config."""
    return appliance_config.load(write_phone_config(folder, exchange, **parts))


def led_lines(leds: dict[str, int]) -> str:
    """``name = pin`` lines for a [pins.leds] table."""
    return "\n".join(f"{name} = {pin}" for name, pin in leds.items())


async def press(factory, pin: int) -> None:
    """A finger on a button: down for 100 ms (longer than any debounce), then up."""
    factory.pin(pin).drive_low()
    await asyncio.sleep(0.1)
    factory.pin(pin).drive_high()


@asynccontextmanager
async def running_service(config: appliance_config.ApplianceConfig,
                          **kwargs) -> AsyncIterator[Service]:
    """The appliance service started on fresh mock pins (PWM-capable, as ``service.factory``);
    closed and the pins reset on the way out. ``kwargs`` go to Service (e.g. notifier)."""
    factory = MockFactory(pin_class=MockPWMPin)
    service = Service(config, pin_factory=factory, **kwargs)
    service.factory = factory
    await service.start()
    try:
        yield service
    finally:
        await service.close()
        factory.reset()
