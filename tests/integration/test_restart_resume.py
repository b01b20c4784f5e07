"""A call survives a restart of the phone's process (issue 16): `piphone run --config` as a
subprocess (as systemd runs it: RUNTIME_DIRECTORY, NOTIFY_SOCKET, mock pins, its headset on the
ALSA rig) answers bob's call; it is killed with SIGKILL mid-call (a crash: nothing runs on the
way out), or sent SIGUSR1 (an upgrade's restart: it exits 75 without hanging up), and started
again; within 3 s of that start the call is open again ("talking" in its
STATUS) with audio both ways (bob hears alice's 700 Hz microphone, alice's earpiece plays bob's
600 Hz), bob's own call never noticed more than a gap, and the exchange's call log holds one
call. The connect token was kept 0600 in the runtime directory and is gone after the hang-up."""

from __future__ import annotations

import asyncio
import json
import signal
import stat
import sys
import time

import pytest

from piphone.appliance.service import RESTART_KEEPING_CALL
from piphone.pcm import dominant_frequency
from piphone.voice import CallStatus

from ..conftest import until
from .appliance_rig import write_phone_config
from .helpers import Events, hears
from .test_alsa_path import RATE
from .test_appliance_hold import hears_hold_music
from .test_appliance_service import ROOT, FakeSystemd, cli, environment, stop

pytestmark = pytest.mark.net

RESUMED_WITHIN = 3.0  # seconds from the second start to the call open with audio both ways
EVENTS = ("accept", "error", "disconnect", "cancel", "reconnecting", "reconnected")


@pytest.fixture
def notify(tmp_path):
    fake = FakeSystemd(tmp_path / "notify")
    yield fake
    fake.close()


async def start_phone(config, env):
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "piphone", "run", "--config", str(config), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)


def earpiece_frequency(headset, since: int) -> float | None:
    """The tone in the last 0.3 s alice's earpiece played after sample ``since``."""
    played = headset.recorded()[since:]
    if len(played) < 0.3 * RATE:
        return None
    return dominant_frequency(played[-int(0.3 * RATE):], RATE)


@pytest.mark.parametrize("exchange_cfg", [{"reconnect_grace": 15.0}], indirect=True)
@pytest.mark.parametrize("how", ["kill -9", "SIGUSR1"])
async def test_a_call_survives_a_restart_of_the_phone(tmp_path, exchange, make_phone, notify,
                                                      alsa_rig, how):
    """kill -9 is a crash (or the watchdog's kill); SIGUSR1 is an upgrade's restart
    (scripts/deploy.sh, the Ansible role): the run ends without hanging up and exits 75, which
    the unit restarts (RestartForceExitStatus=75)."""
    systemd = notify
    alsa_rig["a"].tone(700)  # alice's microphone
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o750)
    kept = runtime / "call.json"
    config = write_phone_config(
        tmp_path, exchange, audio='headset = "piphone_a_cap,piphone_a_play"',
        phone='call_log = ""\nauto_answer_rings = 1', rest="[alerts]\nring_pattern = [0.1, 0.1]\n")
    env = environment(systemd, RUNTIME_DIRECTORY=str(runtime))
    proc = await start_phone(config, env)
    try:
        await until(lambda: systemd.got("READY=1") or proc.returncode is not None, timeout=30,
                    what="READY=1")
        bob = await make_phone("bob", tone=600)
        call = await bob.device.connect({"To": "client:alice"})
        events = Events(call, EVENTS)
        await events.wait("accept", timeout=15)
        await hears(bob, 700)
        await until(kept.exists, what="the call kept in the runtime directory")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        first_sid = call.call_sid

        if how == "kill -9":
            proc.kill()  # SIGKILL: a crash, nothing runs on the way out
            await asyncio.wait_for(proc.wait(), 10)
        else:
            proc.send_signal(signal.SIGUSR1)
            assert await asyncio.wait_for(proc.wait(), 10) == RESTART_KEEPING_CALL
        (held,) = exchange.calls.calls
        await until(lambda: held.callee.session is None, what="alice's leg cut off")
        assert kept.exists()
        bob.recorder.clear()  # from here on, only what bob hears after the gap

        statuses = len(systemd.messages)
        restarted = time.monotonic()
        proc = await start_phone(config, env)
        played = len(alsa_rig["a"].recorded())

        def talking() -> bool:
            return any(m.startswith("STATUS=talking to") for _, m in systemd.messages[statuses:])

        def earpiece_600() -> bool:
            f = earpiece_frequency(alsa_rig["a"], played)
            return f is not None and abs(f - 600) <= 15

        await until(lambda: talking() or proc.returncode is not None, RESUMED_WITHIN + 2,
                    what="alice talking again")
        await hears(bob, 700, timeout=RESUMED_WITHIN + 2)
        await until(earpiece_600, RESUMED_WITHIN + 2, what="600 Hz in alice's earpiece")
        took = time.monotonic() - restarted
        print(f"\nbenchmark: second start of piphone run -> call open, audio both ways: "
              f"{took:.2f} s")
        assert took <= RESUMED_WITHIN
        assert any(m == "STATUS=talking to client:bob" for _, m in systemd.messages[statuses:])
        # bob's call was never anything but open: a gap, no event
        assert call.status() is CallStatus.OPEN and events.names() == ["accept"]
        assert call.call_sid == first_sid and len(exchange.calls.calls) == 1

        call.disconnect()
        await until(lambda: any(m.startswith("STATUS=registered as alice")
                                for _, m in systemd.messages[statuses:]), 10,
                    what="alice idle again")
        await until(lambda: not kept.exists(), what="the kept call removed at the end")
    finally:
        code, err = await stop(proc)
    assert code == 0, err
    (record,) = exchange.records.log.recent()  # one call, from ring to hang-up
    assert record.call_sid == first_sid and record.answered


@pytest.mark.parametrize("exchange_cfg", [{"reconnect_grace": 15.0}], indirect=True)
async def test_a_call_on_hold_survives_a_restart_on_hold(tmp_path, exchange, make_phone, notify,
                                                         alsa_rig):
    """`piphone hold`, then an upgrade's restart (SIGUSR1): the new run takes the call back
    on hold, so bob hears the hold music again after the gap (not alice's microphone, not
    silence), and `piphone hold` then takes it back with audio both ways."""
    systemd = notify
    alsa_rig["a"].tone(700)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o750)
    config = write_phone_config(
        tmp_path, exchange, audio='headset = "piphone_a_cap,piphone_a_play"',
        phone='call_log = ""\nauto_answer_rings = 1', rest="[alerts]\nring_pattern = [0.1, 0.1]\n")
    env = environment(systemd, RUNTIME_DIRECTORY=str(runtime))
    proc = await start_phone(config, env)
    try:
        await until(lambda: systemd.got("READY=1") or proc.returncode is not None, timeout=30,
                    what="READY=1")
        bob = await make_phone("bob", tone=600)
        call = await bob.device.connect({"To": "client:alice"})
        events = Events(call, EVENTS)
        await events.wait("accept", timeout=15)
        await hears(bob, 700)
        assert (await cli(systemd, "hold"))[0] == 0
        await hears_hold_music(bob)
        kept = json.loads((runtime / "call.json").read_text())
        await until(lambda: json.loads((runtime / "call.json").read_text())["calls"][0]["held"],
                    what="the call kept as held")

        proc.send_signal(signal.SIGUSR1)
        assert await asyncio.wait_for(proc.wait(), 10) == RESTART_KEEPING_CALL
        bob.recorder.clear()
        statuses = len(systemd.messages)
        proc = await start_phone(config, env)
        await until(lambda: any(m == "STATUS=client:bob on hold"
                                for _, m in systemd.messages[statuses:])
                    or proc.returncode is not None, RESUMED_WITHIN + 2, what="alice holding")
        await hears_hold_music(bob, timeout=RESUMED_WITHIN + 2)
        assert (await cli(systemd, "hold"))[0] == 0  # taken back
        await hears(bob, 700, timeout=5)
        assert call.status() is CallStatus.OPEN and events.names() == ["accept"]
        assert len(exchange.calls.calls) == 1 and kept
        call.disconnect()
        await until(lambda: not (runtime / "call.json").exists(), 10,
                    what="the kept call removed at the end")
    finally:
        code, err = await stop(proc)
    assert code == 0, err
