"""scripts/install.sh stops early on 32-bit Raspberry Pi OS unless piwheels is configured.

The script runs as written, from a copy of scripts/ in a temporary checkout, with `uname`,
`dpkg-query` and `apt-get` replaced on PATH: `uname -m` answers the machine under test, and the
first apt-get call (made only once the platform check passed) is logged and fails, so nothing
is installed either way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parents[2] / "scripts"
ADVICE = "Flash 64-bit Raspberry Pi OS"


def fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def run_install(tmp_path: Path, machine: str, env: dict[str, str] | None = None,
                pip_conf: str | None = None) -> tuple[subprocess.CompletedProcess[str], str]:
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    for name in ("install.sh", "piwheels_configured.sh"):
        shutil.copy2(SCRIPTS / name, checkout / "scripts" / name)
    bin_dir, home, log = tmp_path / "bin", tmp_path / "home", tmp_path / "calls.log"
    bin_dir.mkdir()
    home.mkdir()
    fake(bin_dir, "uname", f'[ "$1" = -m ] && echo {machine} || exec /bin/uname "$@"')
    fake(bin_dir, "dpkg-query", "exit 1")  # nothing installed: install.sh calls apt-get
    fake(bin_dir, "apt-get", f'echo "apt-get $*" >> {log}; exit 7')
    fake(bin_dir, "sudo", 'exec "$@"')
    if pip_conf is not None:
        (home / ".config" / "pip").mkdir(parents=True)
        (home / ".config" / "pip" / "pip.conf").write_text(pip_conf)
    base = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    full_env = {**base, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(home),
                "XDG_CONFIG_DIRS": str(tmp_path / "no-xdg"), "XDG_CONFIG_HOME": "",
                **(env or {})}
    run = subprocess.run(["bash", str(checkout / "scripts" / "install.sh")], env=full_env,
                         capture_output=True, text=True, timeout=60)
    return run, log.read_text() if log.exists() else ""


def test_armv7l_without_piwheels_stops_before_installing_anything(tmp_path: Path) -> None:
    run, calls = run_install(tmp_path, "armv7l")
    assert run.returncode == 3, run.stderr
    assert ADVICE in run.stderr and "piwheels" in run.stderr
    assert calls == ""
    assert not (tmp_path / "checkout" / ".venv").exists()


@pytest.mark.parametrize("how", ["user pip.conf", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL"])
def test_armv7l_with_piwheels_goes_on(tmp_path: Path, how: str) -> None:
    url = "https://www.piwheels.org/simple"
    if how == "user pip.conf":  # as Raspberry Pi OS writes /etc/pip.conf
        run, calls = run_install(tmp_path, "armv7l", pip_conf=f"[global]\nextra-index-url={url}\n")
    else:
        run, calls = run_install(tmp_path, "armv7l", env={how: url})
    assert run.returncode == 7, run.stderr
    assert ADVICE not in run.stderr
    assert calls.startswith("apt-get update")


def test_armv7l_with_another_extra_index_still_stops(tmp_path: Path) -> None:
    run, calls = run_install(tmp_path, "armv7l",
                             pip_conf="[global]\nextra-index-url=https://example.org/simple\n")
    assert run.returncode == 3 and ADVICE in run.stderr and calls == ""


def test_an_environment_variable_overrides_piwheels_in_the_config(tmp_path: Path) -> None:
    """pip's own precedence: PIP_EXTRA_INDEX_URL replaces the file's extra-index-url."""
    run, calls = run_install(
        tmp_path, "armv7l", env={"PIP_EXTRA_INDEX_URL": "https://example.org/simple"},
        pip_conf="[global]\nextra-index-url=https://www.piwheels.org/simple\n")
    assert run.returncode == 3 and calls == ""


@pytest.mark.parametrize("machine", ["aarch64", "x86_64"])
def test_64_bit_goes_on_without_piwheels(tmp_path: Path, machine: str) -> None:
    run, calls = run_install(tmp_path, machine)
    assert run.returncode == 7, run.stderr
    assert calls.startswith("apt-get update")
