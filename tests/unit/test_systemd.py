"""systemd/piphone.service: `systemd-analyze verify` is silent, `security` exposure <= 2, and
the unit says what the service relies on (notify, watchdog, restart, user and groups)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "piphone.service"
INSTALLED_PIPHONE = "/opt/piphone/.venv/bin/piphone"

needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed")


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.fixture
def unit_here(tmp_path) -> Path:
    """The unit with ExecStart pointing at this venv's piphone (verify checks the program
    exists; on a phone install.sh puts it at /opt/piphone)."""
    here = Path(sys.executable).with_name("piphone")
    copy = tmp_path / "piphone.service"
    copy.write_text(UNIT.read_text().replace(INSTALLED_PIPHONE, str(here)))
    return copy


def test_unit_has_what_the_service_relies_on():
    s = settings()
    assert s["Type"] == ["notify"] and s["Restart"] == ["on-failure"]
    assert int(s["WatchdogSec"][0]) > 0
    assert s["ExecStart"] == [f"{INSTALLED_PIPHONE} run --config /etc/piphone/piphone.toml"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["User"] == ["piphone"] and set(s["SupplementaryGroups"][0].split()) == {
        "audio", "gpio"}
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert s[hardening] == ["yes"], hardening
    assert s["ProtectSystem"] == ["strict"] and "RestrictAddressFamilies" in s


@needs_systemd
def test_systemd_analyze_verify_is_silent(unit_here):
    result = subprocess.run(["systemd-analyze", "verify", str(unit_here)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr


@needs_systemd
def test_security_exposure_at_most_2(unit_here):
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit_here)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    exposure = float(match.group(1))
    print(f"\nsystemd-analyze security exposure of piphone.service: {exposure}")
    assert exposure <= 2.0
