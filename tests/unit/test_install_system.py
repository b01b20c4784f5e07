"""scripts/install.sh --system --dry-run prints the system install and changes nothing; the
starter config in systemd/ is valid but for the account it asks the user for."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from piphone.appliance import config
from piphone.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def dry_run(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PIPHONE_PREFIX=str(tmp_path / "opt"),
               PIPHONE_ETC=str(tmp_path / "etc"), PIPHONE_UNIT_DIR=str(tmp_path / "units"))
    return subprocess.run(["bash", str(ROOT / "scripts" / "install.sh"), *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_system_dry_run_prints_each_step_and_changes_nothing(tmp_path):
    result = dry_run(tmp_path, "--system", "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    opt, etc, units = tmp_path / "opt", tmp_path / "etc", tmp_path / "units"
    expected = [
        f"+ python3 -m venv {opt}/.venv",
        f"+ {opt}/.venv/bin/python -m pip install -q {ROOT}[pi]",
        f"+ install -d -m 0755 {etc}",
        f"+ install -m 0644 systemd/piphone.toml.example {etc}/piphone.toml",
        f"+ install -m 0600 -o piphone -g piphone systemd/secrets.toml.example "
        f"{etc}/secrets.toml",
        f"+ install -m 0644 systemd/piphone.service {units}/piphone.service",
        f"+ install -m 0644 systemd/piphone-exchange.service {units}/piphone-exchange.service",
    ]
    for line in expected:
        assert line in out.splitlines(), line
    user = [line for line in out.splitlines() if "piphone" in line and (
        "useradd" in line or "usermod" in line)]
    assert user and "audio,gpio" in user[0]
    assert "enable piphone.service\n" in out and "(dry run: nothing was changed)" in out
    assert not any(p.exists() for p in (opt, etc, units))


def test_existing_secrets_are_kept_and_made_private(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "secrets.toml").write_text("[account]\n")
    (tmp_path / "etc" / "piphone.toml").write_text("[account]\n")
    out = dry_run(tmp_path, "--system", "--dry-run").stdout
    assert f"+ chmod 0600 {tmp_path}/etc/secrets.toml" in out
    assert "enable piphone.service\n" in out  # no exchange.toml: the exchange stays off
    (tmp_path / "etc" / "exchange.toml").write_text("")
    (tmp_path / "etc" / "exchange-phones.toml").write_text("")
    out = dry_run(tmp_path, "--system", "--dry-run").stdout
    assert "enable piphone.service piphone-exchange.service\n" in out
    for name in ("exchange.toml", "exchange-phones.toml"):  # the exchange reads them as piphone
        assert f"+ chown piphone:piphone {tmp_path}/etc/{name}" in out
        assert f"+ chmod 0600 {tmp_path}/etc/{name}" in out
    assert "secrets.toml.example" not in out and "piphone.toml.example" not in out


def test_bad_arguments(tmp_path):
    assert dry_run(tmp_path, "--dry-run").returncode == 2  # only with --system
    result = dry_run(tmp_path, "--bogus")
    assert result.returncode == 2 and "usage:" in result.stderr


def test_unit_runs_what_the_installer_installs():
    unit = (ROOT / "systemd" / "piphone.service").read_text()
    script = (ROOT / "scripts" / "install_system.sh").read_text()
    assert "PREFIX=${PIPHONE_PREFIX:-/opt/piphone}" in script
    assert "ExecStart=/opt/piphone/.venv/bin/piphone run --config /etc/piphone/piphone.toml" in unit


def test_starter_config_only_lacks_the_account(tmp_path):
    shutil.copy(ROOT / "systemd" / "piphone.toml.example", tmp_path / "piphone.toml")
    shutil.copy(ROOT / "systemd" / "secrets.toml.example", tmp_path / "secrets.toml")
    os.chmod(tmp_path / "secrets.toml", 0o600)
    with pytest.raises(ConfigError, match=r"account: missing key 'account_sid'"):
        config.load(tmp_path / "piphone.toml")
    # filled in, it loads
    text = (tmp_path / "piphone.toml").read_text()
    text = text.replace('# account_sid = "AC..."', f'account_sid = "AC{"0" * 32}"')
    text = text.replace('# api_key_sid = "SK..."', f'api_key_sid = "SK{"1" * 32}"')
    (tmp_path / "piphone.toml").write_text(text)
    (tmp_path / "secrets.toml").write_text('[account]\napi_key_secret = "' + "x" * 32 + '"\n')
    cfg = config.load(tmp_path / "piphone.toml")
    assert cfg.account.identity == "alice" and cfg.phone.mute_reminder == 15


def test_uninstall_dry_run_keeps_config_unless_purged(tmp_path):
    for folder in ("opt", "etc", "units"):
        (tmp_path / folder).mkdir()
    (tmp_path / "units" / "piphone.service").write_text("")
    (tmp_path / "etc" / "secrets.toml").write_text("")
    result = dry_run(tmp_path, "--uninstall", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("+ systemctl") and "disable" in line and
               line.endswith(" piphone.service") for line in lines), lines
    assert f"+ rm -f {tmp_path}/units/piphone.service" in lines
    assert f"+ rm -rf {tmp_path}/opt" in lines
    assert not any(f"rm -rf {tmp_path}/etc" in line for line in lines)
    assert f"kept {tmp_path}/etc and the piphone user (--purge removes them too)" in lines
    purged = dry_run(tmp_path, "--uninstall", "--purge", "--dry-run").stdout.splitlines()
    assert f"+ rm -rf {tmp_path}/etc" in purged
    assert all(p.exists() for p in (tmp_path / "opt", tmp_path / "etc",
                                    tmp_path / "units" / "piphone.service"))


def test_purge_only_with_uninstall(tmp_path):
    result = dry_run(tmp_path, "--purge")
    assert result.returncode == 2 and "--purge goes with --uninstall" in result.stderr
