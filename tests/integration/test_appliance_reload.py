"""The appliance's reload (SIGHUP) updates its Device with update_options instead of building
another (issue 16, part C): between calls the Device stays registered and its next call uses
the new settings; a new identity still gets a new Device."""

from __future__ import annotations

import asyncio

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from piphone.appliance import config as appliance_config
from piphone.appliance.service import Service
from piphone.systemd import Notifier
from piphone.voice import DeviceState
from tests.conftest import until

from .appliance_rig import write_phone_config
from .helpers import DEVICE_EVENTS, Events

pytestmark = pytest.mark.net


class Recorded(Notifier):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def send(self, message: str) -> None:
        self.sent.append(message)


async def test_reload_keeps_the_device_registered_and_updates_its_options(
        tmp_path, exchange, make_phone):
    path = write_phone_config(tmp_path, exchange)
    notifier = Recorded()
    factory = MockFactory(pin_class=MockPWMPin)
    service = Service(appliance_config.load(path), notifier=notifier, pin_factory=factory)
    running = asyncio.ensure_future(service.run())
    try:
        await until(lambda: "READY=1" in notifier.sent, timeout=15, what="READY=1")
        device = service.device
        assert device is not None and device.options.codec_preferences == ("opus", "pcmu")
        events = Events(device, DEVICE_EVENTS)
        text = path.read_text().replace('ice_addresses = ["127.0.0.1"]',
                                        'ice_addresses = ["127.0.0.1"]\n'
                                        'codec_preferences = ["pcmu"]')
        path.write_text(text)
        service.reload()
        await until(lambda: notifier.sent.count("READY=1") == 2, timeout=15,
                    what="READY=1 after the reload")
        assert "RELOADING=1" in notifier.sent
        assert service.device is device  # updated, not rebuilt
        assert device.options.codec_preferences == ("pcmu",)
        assert device.state is DeviceState.REGISTERED and events.names() == []
        # the next call is made with the new settings
        bob = await make_phone("bob")
        rang: asyncio.Queue = asyncio.Queue()
        device.on("incoming", rang.put_nowait)
        call = await bob.device.connect({"To": "alice"})
        incoming = await asyncio.wait_for(rang.get(), 10)
        assert incoming._media_settings.codec_preferences == ("pcmu",)
        call.disconnect()
        await asyncio.wait_for(incoming.wait_closed(), 10)
        # a new identity is another Device
        path.write_text(text.replace('identity = "alice"', 'identity = "carol"'))
        service.reload()
        await until(lambda: notifier.sent.count("READY=1") == 3, timeout=15,
                    what="READY=1 as carol")
        assert service.device is not device and device.state is DeviceState.DESTROYED
    finally:
        service.stop()
        await asyncio.wait_for(running, 20)
        factory.reset()
