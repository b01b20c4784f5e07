"""ansible/: the YAML parses, the playbook passes Ansible's syntax check and ansible-lint's
production profile, and the role installs what scripts/install_system.sh installs, where it
installs it. (tests/integration/test_fleet.py runs the role for real.)"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "ansible"
BIN = Path(sys.executable).parent
DEFAULTS = yaml.safe_load((ANSIBLE / "roles/piphone/defaults/main.yml").read_text())
INSTALL_SYSTEM = (ROOT / "scripts" / "install_system.sh").read_text()


def ansible_env(tmp_path: Path) -> dict[str, str]:
    """Ansible and ansible-lint keep their caches in HOME: the test's folder, not the machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    config = tmp_path / "ansible.cfg"
    config.touch()
    env.update(HOME=str(tmp_path), ANSIBLE_CONFIG=str(config), LC_ALL="C.UTF-8",
               ANSIBLE_NOCOLOR="1", NO_COLOR="1")
    return env


def test_every_yaml_file_parses():
    files = sorted(ANSIBLE.rglob("*.yml"))
    assert len(files) >= 10
    for path in files:
        assert yaml.safe_load(path.read_text()) is not None, path


def test_playbook_syntax_check_with_the_example_inventory(tmp_path):
    result = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i",
                             str(ANSIBLE / "inventory.example.yml"),
                             str(ANSIBLE / "playbook.yml")],
                            cwd=tmp_path, env=ansible_env(tmp_path), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_production_profile(tmp_path):
    result = subprocess.run([str(BIN / "ansible-lint"), "--offline", "--profile", "production",
                             "playbook.yml", "roles/piphone", "inventory.example.yml"],
                            cwd=ANSIBLE, env=ansible_env(tmp_path), capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Profile 'production' was required, and it passed" in result.stderr + result.stdout


def test_role_installs_what_install_system_installs():
    packages = re.search(r"^packages=\(([^)]*)\)", INSTALL_SYSTEM, re.MULTILINE)[1].split()
    assert DEFAULTS["piphone_packages"] == packages
    groups = re.search(r"--groups (\S+) ", INSTALL_SYSTEM)[1].split(",")
    assert DEFAULTS["piphone_user_groups"] == groups
    assert f"USER_NAME={DEFAULTS['piphone_user']}" in INSTALL_SYSTEM
    for variable, default in (("PREFIX", "piphone_prefix"), ("ETC", "piphone_etc_dir"),
                              ("UNIT_DIR", "piphone_unit_dir")):
        assert f":-{DEFAULTS[default]}}}" in re.search(rf"^{variable}=.*$", INSTALL_SYSTEM,
                                                       re.MULTILINE)[0]
    assert DEFAULTS["piphone_extras"] == ["pi"] and '"$(pwd)[pi]"' in INSTALL_SYSTEM
    restart = DEFAULTS["piphone_restart_command"]  # SIGUSR1 while it runs: the call is kept
    assert restart[:2] == ["sh", "-c"]
    assert "systemctl kill --signal=SIGUSR1 --kill-whom=main piphone.service" in restart[2]
    assert "else systemctl restart piphone.service" in restart[2]


def test_unit_paths_are_the_ones_the_role_rewrites():
    """The role installs systemd/piphone.service with /opt/piphone and /etc/piphone replaced by
    its piphone_prefix and piphone_etc_dir: the unit must name them that way."""
    unit = (ROOT / "systemd" / "piphone.service").read_text()
    assert "/opt/piphone/.venv/bin/piphone run --config /etc/piphone/piphone.toml" in unit
    tasks = (ANSIBLE / "roles/piphone/tasks/unit.yml").read_text()
    assert "replace('/opt/piphone', piphone_prefix)" in tasks
    assert "replace('/etc/piphone', piphone_etc_dir)" in tasks
