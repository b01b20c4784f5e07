"""Transfer on the appliance: mock pins, the ALSA test rig (alice's headset is rig headset
``a``, its microphone a 700 Hz tone), real calls through the exchange, which carries the
transfer out (exchange/transfers.py).

- Blind, on the keys: bob calls alice; TRANSFER, 3 0 0 (the exchange's number for carol), #:
  carol rings with bob's call, and once she answers bob and carol hear each other; alice's
  phone is left with no call.
- Attended, through the control socket (`piphone transfer client:carol --attended`, then
  `--complete`): bob is held (he hears hold music) while alice talks to carol; hanging up
  that consultation first gives bob back; the second time, completing joins bob and carol.
- Conference, on the key: with bob held and carol up, CONFERENCE: the exchange mixes, and
  bob, carol and alice's earpiece each hear the other two.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from piphone.voice import CallStatus

from ..conftest import until
from .appliance_rig import led_lines, load_phone_config, press, running_service
from .helpers import hears
from .test_appliance_hold import hears_hold_music, plays
from .test_conference import hears_only

pytestmark = pytest.mark.net

HOOK, ACCEPT, REJECT, HOLD, TRANSFER, CONFERENCE = 17, 27, 22, 23, 24, 25
KEYS = {"key_3": 16, "key_0": 26, "key_hash": 12}
LEDS = {"ring": 5, "call": 6, "mute": 13, "warning": 19, "hold": 20}
MIC, BOB, CAROL = 700, 500, 1100


def config(tmp_path, exchange):
    keys = "\n".join(f"{name} = {pin}" for name, pin in KEYS.items())
    return load_phone_config(
        tmp_path, exchange, audio='headset = "piphone_a_cap,piphone_a_play"',
        phone='mute_reminder = 0\nhold_reminder = 0\ncall_log = ""', rest=f"""
[pins.inputs]
hook = {HOOK}
accept = {ACCEPT}
reject = {REJECT}
hold = {HOLD}
transfer = {TRANSFER}
conference = {CONFERENCE}
{keys}
[pins.leds]
{led_lines(LEDS)}
""")


async def talking_to_bob(service, make_phone, alsa_rig):
    bob = await make_phone("bob", tone=BOB)
    to_alice = await bob.device.connect({"To": "client:alice"})
    await until(lambda: service.phone.state == "ringing", what="alice rings")
    service.factory.pin(HOOK).drive_low()
    await until(lambda: service.phone.state == "talking", what="answered")
    await hears(bob, MIC, timeout=10)
    await until(lambda: plays(alsa_rig["a"], BOB), what="bob in the earpiece")
    return bob, to_alice


@pytest.mark.parametrize("exchange_cfg", [{"numbers": {"300": "carol"}}], indirect=True)
async def test_transfer_key_number_and_hash_hand_bob_on_to_carol(
        tmp_path, exchange, alsa_rig, make_phone):
    alsa_rig["a"].tone(MIC)
    async with running_service(config(tmp_path, exchange)) as service:
        factory = service.factory
        carol = await make_phone("carol", tone=CAROL)
        bob, to_alice = await talking_to_bob(service, make_phone, alsa_rig)
        await press(factory, TRANSFER)
        await until(lambda: service.phone.state == "transfer", what="keying the number")
        await hears_hold_music(bob)
        assert service.status_line() == "client:bob on hold, transfer to ..."
        for key in ("key_3", "key_0", "key_0"):
            await press(factory, KEYS[key])
        assert service.status_line() == "client:bob on hold, transfer to 300"
        await press(factory, KEYS["key_hash"])
        at_carol = await carol.next_call()
        assert at_carol.parameters["From"] == "client:bob"
        await until(lambda: service.phone.call is None, what="alice's phone left the call")
        assert service.phone.state == "dialing"  # the handset is still up
        await asyncio.wait_for(at_carol.accept(), 5)
        await hears(bob, CAROL, timeout=10)
        await hears(carol, BOB, timeout=10)
        assert to_alice.status() is CallStatus.OPEN  # bob's call went on, now with carol


async def test_an_attended_transfer_through_the_control_socket(
        tmp_path, exchange, alsa_rig, make_phone):
    alsa_rig["a"].tone(MIC)
    async with running_service(config(tmp_path, exchange)) as service:
        phone = service.phone
        carol = await make_phone("carol", tone=CAROL)
        bob, to_alice = await talking_to_bob(service, make_phone, alsa_rig)
        consult = {"cmd": "transfer", "number": "client:carol", "attended": True}
        # a consultation hung up gives bob back
        assert service.control(consult)["state"] == "calling"
        await hears_hold_music(bob)
        first = await carol.next_call()
        await asyncio.wait_for(first.accept(), 5)
        await hears(carol, MIC, timeout=10)
        assert service.control({"cmd": "hangup"})["state"] == "held"
        assert service.control({"cmd": "hold"})["state"] == "talking"
        await hears(bob, MIC, timeout=10)
        # again, and this time joined
        assert service.control(consult)["state"] == "calling"
        second = await carol.next_call()
        await asyncio.wait_for(second.accept(), 5)
        await until(lambda: phone.state == "talking", what="talking to carol")
        await until(lambda: plays(alsa_rig["a"], CAROL), what="carol in the earpiece")
        assert service.control({"cmd": "transfer", "complete": True})["state"] == "talking"
        await until(lambda: phone.call is None and phone.held is None, what="alice left")
        await hears(bob, CAROL, timeout=10)
        await hears(carol, BOB, timeout=10)
        assert to_alice.status() is second.status() is CallStatus.OPEN
        assert phone.state == "dialing" and phone.failures == 0


async def test_the_conference_key_joins_the_held_call_and_this_one(
        tmp_path, exchange, alsa_rig, make_phone):
    """bob calls alice; alice consults carol (bob held), then CONFERENCE: bob, carol and
    alice's handset each hear the other two, and not themselves."""
    alsa_rig["a"].tone(MIC)
    async with running_service(config(tmp_path, exchange)) as service:
        phone = service.phone
        carol = await make_phone("carol", tone=CAROL)
        bob, to_alice = await talking_to_bob(service, make_phone, alsa_rig)
        service.control({"cmd": "transfer", "number": "carol", "attended": True})
        at_carol = await carol.next_call()
        await asyncio.wait_for(at_carol.accept(), 5)
        await until(lambda: phone.state == "talking" and phone.held is not None,
                    what="talking to carol, bob held")
        await press(service.factory, CONFERENCE)
        await until(lambda: phone.held is None, what="bob's held call ended at alice's")
        for who, hears_, own in ((bob, (MIC, CAROL), BOB), (carol, (MIC, BOB), CAROL)):
            await until(lambda w=who, h=hears_, o=own: hears_only(w, h, o), 10,
                        what=f"{who.device.identity} hears {hears_}")
        await until(lambda: earpiece_hears(alsa_rig["a"], (BOB, CAROL), MIC), 10,
                    what="alice's earpiece plays bob and carol")
        assert phone.state == "talking" and phone.failures == 0
        assert to_alice.status() is at_carol.status() is CallStatus.OPEN


def earpiece_hears(headset, wanted, unwanted) -> bool:
    x = headset.recorded()[-int(0.6 * 48_000):].astype(float)
    if len(x) < 24_000:
        return False
    spectrum = abs(np.fft.rfft(x * np.hanning(len(x))))
    top = spectrum[1:].max() or 1.0

    def near(f: float) -> float:
        b = int(round(f * len(x) / 48_000))
        return spectrum[max(b - 3, 1):b + 4].max() / top

    return all(near(f) > 0.3 for f in wanted) and near(unwanted) < 0.05
