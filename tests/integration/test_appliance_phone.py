"""The appliance end to end on mock pins: a real exchange, the service's phone registered as
alice, and a second real Device (bob) calling it."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from piphone.appliance import config as appliance_config
from piphone.appliance.service import Service
from tests.conftest import until

from .appliance_rig import load_phone_config, press, running_service

pytestmark = pytest.mark.net

HOOK, RING_LED, CALL_LED = 17, 5, 6
IGNORE, REDIAL, DND = 23, 25, 26
KEYS = {"0": 10, "1": 11, "#": 12}


def write_config(tmp_path, exchange, **phone) -> appliance_config.ApplianceConfig:
    phone = {"call_log": '""', **phone}  # no call log unless a test asks for one
    extra = "\n".join(f"{k} = {v}" for k, v in phone.items()).replace(
        "CALL_LOG", str(tmp_path / "calls.db"))
    return load_phone_config(tmp_path, exchange, phone=extra, rest=f"""
[alerts]
ring_pattern = [0.1, 0.1]

[pins]
pwm_leds = true
[pins.inputs]
hook = {HOOK}
accept = 27
reject = 22
ignore = 23
mute = 24
redial = 25
dnd = 26
key_0 = 10
key_1 = 11
key_hash = 12
[pins.leds]
ring = {RING_LED}
call = {CALL_LED}
mute = 13
warning = 19
""")


class SilentNotifier:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.status = None

    def send(self, message: str) -> None:
        self.sent.append(message)

    def set_status(self, line: str) -> None:
        self.status = line
        self.sent.append(f"STATUS={line}")


@pytest.fixture
async def service(tmp_path, exchange, request):
    phone = getattr(request, "param", None) or {}
    async with running_service(write_config(tmp_path, exchange, **phone),
                               notifier=SilentNotifier()) as svc:
        yield svc


def lit(factory, pin) -> bool:
    return bool(factory.pin(pin).state)


async def test_hook_lift_answers_and_hook_down_hangs_up(service, make_phone):
    assert service.registered.is_set() and "READY=1" in service.notifier.sent
    assert service.notifier.status == "registered as alice"
    # a token that expires while the phone is cut off is minted afresh on reconnection
    from piphone.voice.tokens import read

    fresh = await service.device._token_refresher.source()
    assert read(fresh).identity == "alice" and read(fresh).seconds_left() > 3000
    factory = service.factory
    bob = await make_phone("bob")
    call = await bob.device.connect({"To": "client:alice"})
    await until(lambda: service.phone.state == "ringing", what="the phone rings")
    assert service.notifier.status.startswith("ringing: call from")
    # the ring LED blinks: its pin goes on and off again while ringing
    await until(lambda: lit(factory, RING_LED), what="ring LED on")
    await until(lambda: not lit(factory, RING_LED), what="ring LED blinks off")
    accepted = []
    call.on("accept", accepted.append)
    factory.pin(HOOK).drive_low()  # the handset is lifted (active low, pulled up)
    await until(lambda: accepted, timeout=10, what="bob's call accepted")
    mine = service.phone.call
    await until(lambda: str(mine.status()) == "open", what="alice's call open")
    assert service.phone.state == "talking"
    assert lit(factory, CALL_LED) and not lit(factory, RING_LED)
    assert service.notifier.status.startswith("talking to")
    ended = []
    call.on("disconnect", ended.append)
    factory.pin(HOOK).drive_high()  # hung up
    await until(lambda: ended, timeout=10, what="bob hears the hang-up")
    assert service.phone.state == "idle" and not lit(factory, CALL_LED)
    assert service.notifier.status == "registered as alice"


async def test_reject_button_rejects_at_the_far_side(service, make_phone):
    bob = await make_phone("bob")
    call = await bob.device.connect({"To": "client:alice"})
    await until(lambda: service.phone.state == "ringing", what="the phone rings")
    closed = []
    call.on("status", lambda s: closed.append(s) if str(s) == "closed" else None)
    await press(service.factory, 22)
    await until(lambda: closed, timeout=10, what="bob's call ends")
    assert service.phone.state == "idle" and not lit(service.factory, RING_LED)


async def test_keypad_dialing_and_redial(service, make_phone):
    """101 is bob in the exchange's dial plan."""
    factory = service.factory
    bob = await make_phone("bob")
    factory.pin(HOOK).drive_low()
    await until(lambda: service.phone.state == "dialing", what="dialing")
    for key in "101#":
        await press(factory, KEYS[key])
    incoming = await bob.next_call(timeout=10)
    assert service.phone.state == "calling" and lit(factory, CALL_LED)
    incoming.accept()
    await until(lambda: service.phone.state == "talking", timeout=10, what="talking")
    ended = []
    incoming.on("disconnect", ended.append)
    factory.pin(HOOK).drive_high()
    await until(lambda: ended, timeout=10, what="bob hears the hang-up")
    await press(factory, REDIAL)  # handset down: redial calls 101 again
    again = await bob.next_call(timeout=10)
    assert service.phone.status()["peer"] == "101"
    again.reject()
    await until(lambda: service.phone.state == "idle", timeout=10, what="rejected: idle")


async def test_dnd_rejects_and_ignore_leaves_the_caller_ringing(service, make_phone):
    factory = service.factory
    bob = await make_phone("bob")
    await press(factory, DND)
    await until(lambda: service.phone.dnd, what="do not disturb on")
    call = await bob.device.connect({"To": "client:alice"})
    closed = []
    call.on("status", lambda s: closed.append(s) if str(s) == "closed" else None)
    await until(lambda: closed, timeout=10, what="bob's call refused")
    assert service.phone.state == "idle" and not lit(factory, RING_LED)
    await press(factory, DND)
    await until(lambda: not service.phone.dnd, what="do not disturb off")
    call = await bob.device.connect({"To": "client:alice"})
    await until(lambda: service.phone.state == "ringing", what="alice rings")
    await press(factory, IGNORE)
    await until(lambda: service.phone.state == "idle", what="ignored")
    assert not lit(factory, RING_LED)
    assert str(call.status()) == "ringing"  # the caller still hears it ring
    call.disconnect()


@pytest.mark.parametrize("service", [{"auto_answer_rings": 2}], indirect=True)
async def test_auto_answer(service, make_phone):
    bob = await make_phone("bob")
    call = await bob.device.connect({"To": "client:alice"})
    accepted = []
    call.on("accept", accepted.append)
    await until(lambda: accepted, timeout=10, what="auto-answer after two rings")
    assert service.phone.state == "talking" and service.phone.rings == 2
    call.disconnect()
    await until(lambda: service.phone.state == "idle", timeout=10, what="idle")


async def test_service_close_leaves_nothing_behind(tmp_path, exchange, make_phone):
    """After a call and close(): no task, no peer connection, no socket, no timer, no pin."""
    from .leaks import LeakCheck

    leaks = LeakCheck()
    factory = MockFactory(pin_class=MockPWMPin)
    service = Service(write_config(tmp_path, exchange, mute_reminder=1), pin_factory=factory)
    await service.start()
    phone = service.phone
    bob = await make_phone("bob")
    call = await bob.device.connect({"To": "client:alice"})
    await until(lambda: phone.state == "ringing", what="alice rings")
    factory.pin(HOOK).drive_low()
    await until(lambda: str(call.status()) == "open", timeout=10, what="answered")
    await press(factory, 24)  # muted: the mute reminder's timer runs
    await until(lambda: phone.muted and "mute" in phone.timers, what="muted")
    await service.close()
    await service.close()  # idempotent
    assert phone.timers.running == frozenset()
    assert not any(factory.pin(p).state for p in (RING_LED, CALL_LED))
    await leaks.shut_down_and_check([bob], None, exchange)


@pytest.mark.parametrize("service", [{"call_log": '"CALL_LOG"'}], indirect=True)
async def test_calls_go_in_the_call_log(service, make_phone, tmp_path):
    from piphone.calllog import CallLog

    factory = service.factory
    bob = await make_phone("bob")
    call = await bob.device.connect({"To": "client:alice"})  # answered, then hung up here
    await until(lambda: service.phone.state == "ringing", what="alice rings")
    factory.pin(HOOK).drive_low()
    await until(lambda: str(call.status()) == "open", timeout=10, what="answered")
    factory.pin(HOOK).drive_high()
    await until(lambda: service.phone.state == "idle", what="idle")
    await press(factory, DND)  # refused while do-not-disturb is on
    second = await bob.device.connect({"To": "client:alice"})
    await until(lambda: str(second.status()) == "closed", timeout=10, what="refused")
    await press(factory, DND)
    await press(factory, REDIAL)  # nothing to redial yet: nothing happens
    factory.pin(HOOK).drive_low()
    for key in "101#":
        await press(factory, KEYS[key])
    outgoing = await bob.next_call(timeout=10)
    outgoing.reject()
    await until(lambda: service.phone.state == "dialing", timeout=10, what="rejected")
    factory.pin(HOOK).drive_high()
    log = CallLog(service.cfg.phone.call_log)
    try:
        await until(lambda: len(log.recent()) == 3 and all(r.outcome for r in log.recent()),
                    timeout=10, what="three calls logged")
        out, refused, answered = log.recent()  # newest first
    finally:
        log.close()
    assert (answered.direction, answered.peer, answered.outcome) == (
        "INCOMING", "client:bob", "completed")
    assert answered.identity == "alice" and answered.codec == "opus"
    assert (refused.direction, refused.outcome) == ("INCOMING", "rejected")
    # (the call log files a call the callee refused as cancelled, seen from the caller)
    assert (out.direction, out.peer) == ("OUTGOING", "101") and out.outcome in (
        "rejected", "busy", "cancelled")
