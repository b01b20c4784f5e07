"""systemd/piphone.service and piphone-exchange.service: `systemd-analyze verify` is silent,
`security` exposure <= 2, and the units say what the daemons rely on (notify, watchdog,
restart, user and groups); `piphone exchange` tells a fake systemd it is ready."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "piphone.service"
UNITS = ("piphone.service", "piphone-exchange.service")
INSTALLED_PIPHONE = "/opt/piphone/.venv/bin/piphone"

needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed")


def settings(unit: Path = UNIT) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def unit_here(tmp_path, name: str) -> Path:
    """The unit with ExecStart pointing at this venv's piphone (verify checks the program
    exists; on a phone install.sh puts it at /opt/piphone)."""
    here = Path(sys.executable).with_name("piphone")
    copy = tmp_path / name
    copy.write_text((ROOT / "systemd" / name).read_text().replace(INSTALLED_PIPHONE, str(here)))
    return copy


def test_unit_has_what_the_service_relies_on():
    s = settings()
    assert s["Type"] == ["notify"] and s["Restart"] == ["on-failure"]
    assert int(s["WatchdogSec"][0]) > 0
    assert s["ExecStart"] == [f"{INSTALLED_PIPHONE} run --config /etc/piphone/piphone.toml"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    # SIGUSR1 (an upgrade) ends a run with this status, keeping the call: a clean exit that
    # systemd restarts anyway, with the runtime directory (the kept call) left in place
    from piphone.appliance.service import RESTART_KEEPING_CALL
    assert s["SuccessExitStatus"] == s["RestartForceExitStatus"] == [str(RESTART_KEEPING_CALL)]
    assert s["RuntimeDirectoryPreserve"] == ["restart"]
    assert s["User"] == ["piphone"] and set(s["SupplementaryGroups"][0].split()) == {
        "audio", "gpio"}
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert s[hardening] == ["yes"], hardening
    assert s["ProtectSystem"] == ["strict"] and "RestrictAddressFamilies" in s
    # TLS needs a set clock: after the NTP client's target, which the unit does not pull in
    # (systemd.special(7): the NTP client does); the code waits too (voice/tls.py).
    assert "time-sync.target" in s["After"][0].split()
    assert all("time-sync.target" not in w for w in s.get("Wants", []) + s.get("Requires", []))


def test_exchange_unit():
    s = settings(ROOT / "systemd" / "piphone-exchange.service")
    assert s["Type"] == ["notify"] and s["Restart"] == ["on-failure"]
    assert s["ExecStart"] == [f"{INSTALLED_PIPHONE} exchange --config /etc/piphone/exchange.toml"]
    assert s["PrivateDevices"] == ["yes"] and s["User"] == ["piphone"]
    assert s["StateDirectory"] == ["piphone-exchange"] and s["ProtectSystem"] == ["strict"]


def memory_bytes(value: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(value[:-1]) * units[value[-1]] if value[-1] in units else int(value)


@pytest.mark.parametrize(("name", "calls"), [("piphone.service", 2),
                                             ("piphone-exchange.service", None)])
def test_both_units_bound_memory_tasks_and_files(name, calls):
    """Limits that fit a Pi (1 GB: both units together stay well under it) and what each
    daemon may hold: the exchange one file per session it admits, plus media sockets."""
    from piphone.exchange.config import DEFAULT_MAX_CALLS, Limits

    s = settings(ROOT / "systemd" / name)
    memory, tasks, files = (memory_bytes(s["MemoryMax"][0]), int(s["TasksMax"][0]),
                            int(s["LimitNOFILE"][0]))
    assert 128 << 20 <= memory <= 512 << 20
    assert 32 <= tasks <= 512
    if name == "piphone-exchange.service":
        sessions = Limits.max_sessions
        legs = DEFAULT_MAX_CALLS * 2 * 10  # every call ringing ten devices, each leg's sockets
        assert files >= sessions + legs * 2 + 64
    else:
        assert files >= 256


def test_the_exchange_starts_from_its_starter_config_with_etc_read_only(tmp_path):
    """As under its unit: /etc/piphone read-only (ProtectSystem=strict), $STATE_DIRECTORY set
    (StateDirectory=): the starter's call log goes in the state directory, and the exchange
    serves instead of failing on 'unable to open database file' in a restart loop."""
    import shutil

    from piphone.exchange import config as exchange_config

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a read-only bind mount needs root")
    etc, state = tmp_path / "etc", tmp_path / "var-lib" / "piphone-exchange"
    etc.mkdir()
    state.mkdir(parents=True)
    config = exchange_config.write_starter(etc / "exchange.toml")
    env = dict(os.environ, STATE_DIRECTORY=str(state), PYTHONPATH=str(ROOT / "firmware"))
    script = ('mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && '
              'exec "$@"')
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             script, str(etc), sys.executable, "-m", "piphone", "-q",
                             "exchange", "--config", str(config), "--port", "0"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        assert "serving wss://" in banner, proc.stderr.read() if proc.poll() is not None else ""
        assert (state / "exchange-calls.db").exists()
        assert not (etc / "exchange-calls.db").exists()
    finally:
        proc.terminate()
        proc.wait(20)


@needs_systemd
@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verify_is_silent(tmp_path, name):
    result = subprocess.run(["systemd-analyze", "verify", str(unit_here(tmp_path, name))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr


# `systemd-analyze security --offline=true` scores before the resource limits were added:
# hardening may only go up.
EXPOSURE = {"piphone.service": 1.5, "piphone-exchange.service": 1.1}


@needs_systemd
@pytest.mark.parametrize("name", UNITS)
def test_security_exposure_stays_at_or_below_its_score(tmp_path, name):
    result = subprocess.run(["systemd-analyze", "security", "--offline=true",
                             str(unit_here(tmp_path, name))],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    exposure = float(match.group(1))
    print(f"\nsystemd-analyze security exposure of {name}: {exposure}")
    assert exposure <= EXPOSURE[name]


def test_exchange_notifies_ready_and_watchdog(tmp_path):
    import socket

    from piphone.exchange import config as exchange_config

    config = exchange_config.write_starter(tmp_path / "exchange.toml")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_USEC="100000",
               PYTHONPATH=str(ROOT / "firmware"))
    proc = subprocess.Popen([sys.executable, "-m", "piphone", "-q", "exchange", "--config",
                             str(config), "--port", "0"], env=env, stdout=subprocess.DEVNULL)
    try:
        messages = [notify.recv(4096).decode()]
        assert messages[0].startswith("READY=1\nSTATUS=serving wss://127.0.0.1:")
        while messages.count("WATCHDOG=1") < 2:
            messages.append(notify.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        while "STOPPING=1" not in messages:
            messages.append(notify.recv(4096).decode())
    finally:
        proc.kill()
        notify.close()


def test_a_caller_named_with_a_newline_cannot_add_an_sd_notify_line(tmp_path, monkeypatch):
    import socket

    from piphone.systemd import Notifier

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    try:
        notifier = Notifier()
        notifier.set_status("ringing: call from client:eve\nWATCHDOG=trigger\r\x1b[2J" + "x" * 500)
        message = notify.recv(4096).decode()
    finally:
        notify.close()
    assert "\n" not in message and "\r" not in message and "\x1b" not in message
    assert message.startswith("STATUS=ringing: call from client:eve\\nWATCHDOG=trigger\\r")
    assert len(message) < 300
    assert notifier.status == message.removeprefix("STATUS=")
