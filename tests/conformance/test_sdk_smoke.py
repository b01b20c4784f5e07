from .conftest import pytestmark  # noqa: F401


async def test_sdk_registers_with_the_exchange(sdk_phone, exchange):
    phone = await sdk_phone("browser")
    await phone.wait_event("registered", source="device")
    assert (await phone.state())["device"] == "registered"
    assert exchange.registrations.of("browser")
