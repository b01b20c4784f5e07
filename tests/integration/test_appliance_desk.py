"""The desk phone's everyday basics end to end on mock pins, through the real exchange:
settings kept across a restart (and a state file that lies), the idle panel's cues (offline,
do-not-disturb, missed calls), contacts, speed dial and call-back."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import until

from .appliance_rig import load_phone_config, press, running_service

pytestmark = pytest.mark.net

HOOK, ACCEPT, REJECT, VOLUME_UP, VOLUME_DOWN, DND = 17, 27, 22, 5, 6, 26
MISSED, SPEED_1, SPEED_2 = 2, 3, 21
RING_LED, CALL_LED, MUTE_LED, WARNING_LED, DND_LED, MISSED_LED = 12, 13, 25, 4, 18, 19


def write_config(tmp_path, exchange, *, phone: str = "", rest: str = "", url: str | None = None):
    """alice on mock pins with the desk keys and LEDs; her state file and call log in
    ``tmp_path``."""
    return load_phone_config(tmp_path, exchange, url=url, phone=f"""\
call_log = "{tmp_path / 'calls.db'}"
state_file = "{tmp_path / 'state.json'}"
{phone}""", rest=f"""
[alerts]
ring_pattern = [0.1, 0.1]

[pins.inputs]
hook = {HOOK}
accept = {ACCEPT}
reject = {REJECT}
volume_up = {VOLUME_UP}
volume_down = {VOLUME_DOWN}
dnd = {DND}

[pins.leds]
ring = {RING_LED}
call = {CALL_LED}
mute = {MUTE_LED}
warning = {WARNING_LED}
{rest}""")


def lit(factory, pin) -> bool:
    return bool(factory.pin(pin).state)


# --- 1. settings that persist ---------------------------------------------------------------
async def test_a_restart_restores_volumes_and_do_not_disturb(tmp_path, exchange, make_phone):
    cfg = write_config(tmp_path, exchange)
    bob = await make_phone("bob")
    async with running_service(cfg) as service:
        phone, factory = service.phone, service.factory
        await until(lambda: service.registered.is_set(), what="registered")
        for _ in range(3):
            await press(factory, VOLUME_DOWN)  # idle: the ringer, 7 -> 4
        await until(lambda: phone.ringer_step == 4, what="ringer softer")
        call = await bob.device.connect({"To": "client:alice"})
        await until(lambda: phone.state == "ringing", what="alice rings")
        factory.pin(HOOK).drive_low()
        await until(lambda: phone.state == "talking", timeout=10, what="talking")
        await press(factory, VOLUME_UP)  # in a call: the call volume, 7 -> 8
        await until(lambda: phone.volume_step == 8, what="call louder")
        assert phone.ringer_step == 4
        factory.pin(HOOK).drive_high()
        await until(lambda: phone.state == "idle", timeout=10, what="hung up")
        await press(factory, DND)
        await until(lambda: phone.dnd, what="do not disturb")
        saved = json.loads((tmp_path / "state.json").read_text())
        assert (saved["call_volume"], saved["ringer_volume"], saved["dnd"]) == (8, 4, True)
        del call
    async with running_service(cfg) as service:  # the phone restarts
        phone = service.phone
        assert (phone.volume_step, phone.ringer_step, phone.dnd) == (8, 4, True)
        status = service.status()
        assert (status["volume"], status["ringer_volume"], status["dnd"]) == (8, 4, True)
        await until(lambda: service.registered.is_set(), what="registered")
        closed = []
        call = await bob.device.connect({"To": "client:alice"})
        call.on("status", lambda s: closed.append(s) if str(s) == "closed" else None)
        await until(lambda: closed, timeout=10, what="DND rejects bob after the restart")
        assert phone.state == "idle"


@pytest.mark.parametrize("content", [b"\x00garbage{", b'{"call_volume": 1e9, "ringer_volume"'
                                     b': 7, "dnd": false}', b'{"call_volume": 3, '
                                     b'"ringer_volume": 99, "dnd": true}'],
                         ids=["binary", "huge volume", "ringer out of range"])
async def test_a_corrupt_state_file_is_reported_and_replaced(tmp_path, exchange, caplog,
                                                             content):
    (tmp_path / "state.json").write_bytes(content)
    cfg = write_config(tmp_path, exchange, phone="dnd_at_start = true",
                       rest="")
    with caplog.at_level(logging.ERROR, logger="piphone.appliance.state_file"):
        async with running_service(cfg) as service:
            phone = service.phone
            # the configured start values, not a crash and not the file's
            assert (phone.volume_step, phone.ringer_step, phone.dnd) == (7, 7, True)
            await until(lambda: service.registered.is_set(), what="registered")
    [record] = [r for r in caplog.records if "state file" in r.getMessage()]
    assert str(tmp_path / "state.json") in record.getMessage()
    assert json.loads((tmp_path / "state.json").read_text()) == {
        "version": 1, "call_volume": 7, "ringer_volume": 7, "dnd": True}
