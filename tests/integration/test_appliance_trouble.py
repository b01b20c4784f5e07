"""The appliance in trouble, on mock pins through the netfault relay (alice, the phone, is
behind it; bob is not): packet loss raises a quality warning that lights the warning LED and
chirps once, and clears; a media cut shows the reconnecting pattern (the call LED pulses, the
reconnecting pips play) and the call recovers to talking."""

from __future__ import annotations

import pytest

from piphone.appliance import config as appliance_config

from ..conftest import until
from .appliance_rig import led_lines, load_phone_config, running_service

pytestmark = pytest.mark.net

HOOK = 17
LEDS = {"ring": 5, "call": 6, "mute": 13, "warning": 19}


def write_config(tmp_path, exchange, url: str) -> appliance_config.ApplianceConfig:
    return load_phone_config(tmp_path, exchange, url=url, rest=f"""
[pins.inputs]
hook = {HOOK}
[pins.leds]
{led_lines(LEDS)}
""")


class Sounds:
    """Records what the phone asks of its sounds."""

    def __init__(self) -> None:
        self.log: list[tuple] = []

    def ring(self, on):
        self.log.append(("ring", on))

    def tone(self, name):
        self.log.append(("tone", name))

    def beep(self, name):
        self.log.append(("beep", name))

    def dtmf(self, digit):
        self.log.append(("dtmf", digit))

    def volume(self, step):
        pass

    def ringer_volume(self, step):
        pass


def brightness(factory, name: str) -> float:
    return float(factory.pin(LEDS[name]).state or 0.0)


@pytest.fixture
async def talking(tmp_path, exchange, netfault, make_phone):
    """alice (the service, behind the relay) talking with bob."""
    async with running_service(write_config(tmp_path, exchange, netfault.url)) as service:
        factory = service.factory
        sounds = Sounds()
        service.phone.sounds = sounds
        bob = await make_phone("bob", tone=660)
        call = await bob.device.connect({"To": "client:alice"})
        await until(lambda: service.phone.state == "ringing", what="alice rings")
        factory.pin(HOOK).drive_low()
        await until(lambda: str(call.status()) == "open" and service.phone.call is not None
                    and str(service.phone.call.status()) == "open", timeout=10,
                    what="talking")
        yield service, factory, sounds, call


async def test_packet_loss_lights_the_warning_led_and_chirps(talking, netfault):
    service, factory, sounds, _ = talking
    raised: set[str] = set()
    service.phone.listeners.append(lambda phone: raised.update(phone.warnings))
    lossy = {"high-packet-loss", "high-packets-lost-fraction", "low-mos"}
    netfault.media.to_client.loss = 0.1
    await until(lambda: "high-packet-loss" in service.phone.warnings, timeout=15,
                what="the high-packet-loss warning")
    assert brightness(factory, "warning") == 1.0 and service.phone.state == "talking"
    netfault.media.to_client.loss = 0.0
    await until(lambda: not service.phone.warnings & lossy, timeout=20,
                what="the loss warnings cleared")
    # One chirp per warning raised. Besides the loss, alice (headset = "none") sends pure
    # silence, which the SDK's monitor rightly calls a constant-audio-input-level.
    assert raised - lossy <= {"constant-audio-input-level"}, raised
    assert sounds.log.count(("beep", "warning")) == len(raised)
    assert brightness(factory, "warning") == (1.0 if service.phone.warnings else 0.0)


@pytest.mark.parametrize("exchange_cfg", [{"reconnect_grace": 10.0}], indirect=True)
async def test_media_cut_shows_reconnecting_and_recovers(talking, netfault):
    service, factory, sounds, call = talking
    assert brightness(factory, "call") == 1.0
    netfault.media.set(blackhole=True)
    await until(lambda: service.phone.state == "reconnecting", timeout=10,
                what="reconnecting")
    assert ("tone", "reconnecting") in sounds.log
    seen: set[float] = set()

    def pulsing() -> bool:  # the call LED breathes: several brightness levels in between
        seen.add(round(brightness(factory, "call"), 1))
        return len(seen - {0.0, 1.0}) >= 3

    await until(pulsing, timeout=5, what="the call LED pulsing")
    netfault.media.set(blackhole=False)
    await until(lambda: service.phone.state == "talking", timeout=10, what="reconnected")
    await until(lambda: brightness(factory, "call") == 1.0, what="call LED solid again")
    assert sounds.log[-1] == ("tone", None) and str(call.status()) == "open"
