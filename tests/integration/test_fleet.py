"""ansible/playbook.yml run for real on this machine (ansible_connection=local), with the role's
paths moved into a temporary folder: it makes a venv and pip-installs piphone from this
clone's committed HEAD, writes piphone.toml and a 0600 secrets.toml from inventory variables,
checks them with the installed `piphone check` before they replace the live files, and runs
the restart command only when something changed.

Not covered here: the apt packages, the piphone user and the systemd unit (the role's
piphone_manage_* switches are off: this machine is not a Pi and systemd is not PID 1), and
pip downloading from PyPI: the tests run with no network, so pip takes every dependency from
a wheelhouse packed from this venv (wheelhouse.py), through the role's piphone_pip_args.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from piphone import __version__
from piphone.appliance import config as appliance_config

from . import wheelhouse

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "ansible" / "playbook.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
SECRET = "s3cret-\"quoted\"-0123456789"
RING_DEVICE = 'plughw:CARD="Téléphone\\1"'  # a quote, a backslash and non-ASCII survive


@dataclass
class Played:
    rc: int
    output: str
    changed: int
    failed: int
    seconds: float


@dataclass
class Fleet:
    folder: Path
    wheels: Path

    @property
    def prefix(self) -> Path:
        return self.folder / "opt"

    @property
    def etc(self) -> Path:
        return self.folder / "etc"

    @property
    def restarts(self) -> int:
        log = self.folder / "restarts.log"
        return len(log.read_text().splitlines()) if log.exists() else 0

    def inventory(self, host_config: dict, secret: str | None) -> dict:
        """One phone, phone1: group vars for every phone, host vars over them."""
        host = {"piphone_identity": "desk1", "piphone_host_config": host_config}
        if secret is not None:
            host["piphone_api_key_secret"] = secret
        group = {
            # this machine, not a Pi: local connection, paths in the test's folder
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "ansible_become": False,
            "piphone_prefix": str(self.prefix),
            "piphone_etc_dir": str(self.etc),
            "piphone_build_dir": str(self.folder / "build"),
            "piphone_user": _user(),
            "piphone_group": _group(),
            "piphone_python": _base_python(),
            "piphone_manage_packages": False,
            "piphone_manage_user": False,
            "piphone_manage_unit": False,
            "piphone_restart_command": ["sh", "-c", 'echo restart >> "$0"',
                                        str(self.folder / "restarts.log")],
            "piphone_pip_args": ["--no-index", "--find-links", str(self.wheels)],
            # what every phone of the group shares
            "piphone_config": {
                "account": {"signaling_url": "ws://exchange.local:8089/signal",
                            "account_sid": "AC" + "0" * 32, "api_key_sid": "SK" + "1" * 32},
                "audio": {"headset": "auto", "ring_device": RING_DEVICE},
                "phone": {"dial_timeout": 3, "call_log": ""},
                "pins": {"inputs": {"hook": {"pin": 17, "pull_up": True, "active_low": True},
                                    "accept": 27},
                         "leds": {"ring": 12, "call": 13}},
            },
        }
        return {"all": {"children": {"phones": {"hosts": {"phone1": host}, "vars": group}}}}

    def play(self, host_config: dict | None = None, secret: str | None = SECRET,
             *args: str) -> Played:
        inventory = self.folder / "inventory.yml"
        inventory.write_text(yaml.safe_dump(self.inventory(host_config or {}, secret),
                                            allow_unicode=True))
        return self.run(ANSIBLE_PLAYBOOK, "-i", inventory, PLAYBOOK, *args)

    def run(self, program: Path, *args: str | Path, host: str = "phone1") -> Played:
        start = time.monotonic()
        result = subprocess.run([str(program), *map(str, args)], cwd=self.folder,
                                env=self.env(), capture_output=True, text=True, timeout=240,
                                stdin=subprocess.DEVNULL)
        seconds = time.monotonic() - start
        output = result.stdout + result.stderr
        recap = re.search(rf"^{re.escape(host)}\s*:\s*ok=(\d+)\s+changed=(\d+)\s+"
                          r"unreachable=(\d+)\s+failed=(\d+)", output, re.MULTILINE)
        assert recap, output
        return Played(result.returncode, output, int(recap[2]), int(recap[4]), seconds)

    def env(self) -> dict[str, str]:
        """Nothing of Ansible's or pip's lands outside the folder; no config file is read."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PIP_"))}
        home = self.folder / "home"
        home.mkdir(exist_ok=True)
        config = self.folder / "ansible.cfg"
        config.touch()
        env.update(HOME=str(home), ANSIBLE_CONFIG=str(config), ANSIBLE_HOME=str(home / "ansible"),
                   ANSIBLE_LOCAL_TEMP=str(home / "ansible-local"),
                   ANSIBLE_REMOTE_TEMP=str(home / "ansible-remote"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_PIPELINING="1",  # one process per task instead of copy-then-run
                   ANSIBLE_RETRY_FILES_ENABLED="0", LC_ALL="C.UTF-8",
                   PIP_CONFIG_FILE=os.devnull, PIP_CACHE_DIR=str(home / "pip-cache"),
                   PIP_DISABLE_PIP_VERSION_CHECK="1")
        return env

    def live_files(self) -> dict[str, tuple[bytes, int, int]]:
        """The live config: bytes, mode and mtime of each file."""
        out = {}
        for name in ("piphone.toml", "secrets.toml"):
            st = (self.etc / name).stat()
            out[name] = ((self.etc / name).read_bytes(), st.st_mode, st.st_mtime_ns)
        return out


def changed_task(played: Played, name: str) -> bool:
    """Whether the task of that name ran and changed something (not just listed as skipped)."""
    return re.search(rf"^TASK \[piphone : {re.escape(name)}\] \**\nchanged: ", played.output,
                     re.MULTILINE) is not None


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _group() -> str:
    import grp

    return grp.getgrgid(os.getgid()).gr_name


def _base_python() -> str:
    """The Python this venv was made from: the wheelhouse's compiled wheels are for it."""
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> tuple[Fleet, Played]:
    folder = tmp_path_factory.mktemp("fleet")
    wheels = folder / "wheels"
    wheelhouse.build(wheels, extras=("pi",))
    fleet = Fleet(folder, wheels)
    first = fleet.play()
    assert first.rc == 0 and first.failed == 0, first.output
    assert fleet.restarts == 1  # once, though both the package and the config changed
    return fleet, first


def test_first_run_installs_piphone_in_a_venv(fleet):
    fleet, first = fleet
    version = subprocess.run([str(fleet.prefix / ".venv" / "bin" / "piphone"), "--version"],
                             capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == f"piphone {__version__}", version
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert (fleet.prefix / "installed-commit").read_text().strip() == head
    # a venv of its own, not this one: its piphone is the archive's copy, not an editable link
    location = subprocess.run([str(fleet.prefix / ".venv" / "bin" / "python"), "-c",
                               "import piphone; print(piphone.__file__)"],
                              capture_output=True, text=True, timeout=60).stdout
    assert location.startswith(str(fleet.prefix / ".venv")), location
    print(f"first run: {first.seconds:.1f} s, changed={first.changed}")


def test_first_run_writes_the_config_that_piphone_loads(fleet):
    fleet, first = fleet
    toml, secrets = fleet.etc / "piphone.toml", fleet.etc / "secrets.toml"
    assert toml.stat().st_mode & 0o777 == 0o644
    assert secrets.stat().st_mode & 0o777 == 0o600
    assert secrets.stat().st_uid == os.getuid()
    cfg = appliance_config.load(toml)
    assert cfg.account.identity == "desk1"
    assert cfg.account.signaling_url == "ws://exchange.local:8089/signal"
    assert cfg.account.account_sid == "AC" + "0" * 32
    assert cfg.account.api_key_secret == SECRET
    assert cfg.secrets_path == secrets
    assert cfg.audio.ring_device == RING_DEVICE
    assert cfg.phone.dial_timeout == 3.0 and cfg.phone.call_log is None
    assert cfg.pins.inputs["hook"].pull_up and cfg.pins.leds == {"ring": 12, "call": 13}
    assert SECRET not in toml.read_text()  # the secret is only in the 0600 file
    assert "Say that the headset was not found" in first.output  # no card here: valid anyway
    assert SECRET not in first.output


def test_second_run_changes_nothing_and_restarts_nothing(fleet):
    fleet, _ = fleet
    before, files = fleet.restarts, fleet.live_files()
    again = fleet.play()
    if again.changed:  # a test before this one ran another inventory: once more, then
        before, files = fleet.restarts, fleet.live_files()
        again = fleet.play()
    assert again.rc == 0 and again.changed == 0, again.output
    assert fleet.restarts == before and fleet.live_files() == files


@pytest.mark.parametrize("host_config, secret, message", [
    ({"pins": {"leds": {"blinker": 5}}}, SECRET,
     r"piphone: \S+/etc/pending/piphone\.toml, line \d+: pins\.leds\.blinker: unknown led "
     r"'blinker'"),
    ({"phone": {"dial_timeout": 99}}, SECRET,
     r"piphone: \S+/etc/pending/piphone\.toml, line \d+: phone\.dial_timeout: must be "
     r"0\.5-30 seconds"),
    ({}, None,
     r"piphone: \S+/etc/pending/secrets\.toml: account\.api_key_secret: missing"),
], ids=["unknown-led", "out-of-range", "secret-missing"])
def test_bad_value_stops_the_play_and_keeps_the_live_config(fleet, host_config, secret,
                                                           message):
    fleet, _ = fleet
    before, files = fleet.restarts, fleet.live_files()
    bad = fleet.play(host_config, secret)
    assert bad.rc != 0 and bad.failed == 1, bad.output
    fatal = next(line for line in bad.output.splitlines() if line.startswith("fatal: [phone1]"))
    assert re.search(message, fatal), fatal
    assert "piphone.toml and secrets.toml are unchanged" in fatal
    assert fleet.live_files() == files  # not a byte, mode or time touched
    assert fleet.restarts == before


def test_an_upgrade_whose_config_is_refused_is_finished_by_the_next_good_run(fleet):
    """The phone had an older commit; the run that installs the new one stops at a bad value.
    The next good run installs again and restarts the service (once), though the live config
    did not change: the phone does not stay on the old program over the new files."""
    fleet, _ = fleet
    marker = fleet.prefix / "installed-commit"
    head = marker.read_text()
    marker.write_text("0" * 40 + "\n")  # as if an older piphone were installed
    before = fleet.restarts
    bad = fleet.play({"pins": {"leds": {"blinker": 5}}})
    assert bad.rc != 0 and changed_task(bad, "Install piphone and its dependencies with pip")
    assert marker.read_text() == "0" * 40 + "\n" and fleet.restarts == before
    good = fleet.play()
    assert good.rc == 0, good.output
    assert changed_task(good, "Install piphone and its dependencies with pip")
    assert marker.read_text() == head and fleet.restarts == before + 1


def test_check_mode_says_what_would_change_and_checks_it_without_touching_the_phone(fleet):
    fleet, _ = fleet
    before, files = fleet.restarts, fleet.live_files()
    dry = fleet.play({"phone": {"call_waiting": True}}, SECRET, "--check", "--diff")
    assert dry.rc == 0 and dry.changed > 0, dry.output
    assert "+call_waiting = true" in dry.output and SECRET not in dry.output
    bad = fleet.play({"pins": {"leds": {"blinker": 5}}}, SECRET, "--check")
    assert bad.rc != 0 and "pins.leds.blinker: unknown led 'blinker'" in bad.output
    assert fleet.live_files() == files and fleet.restarts == before


def test_restart_runs_once_when_the_config_changes(fleet):
    fleet, _ = fleet
    before = fleet.restarts
    changed = fleet.play({"phone": {"call_waiting": True}, "audio": {"ring_device": None}})
    assert changed.rc == 0 and changed.changed > 0, changed.output
    assert fleet.restarts == before + 1
    cfg = appliance_config.load(fleet.etc / "piphone.toml")
    assert cfg.phone.call_waiting and cfg.phone.dial_timeout == 3.0  # merged over the group's
    assert cfg.audio.ring_device is None  # null leaves the group's key out
    assert fleet.play().rc == 0 and fleet.restarts == before + 2  # and back


def test_the_example_inventory_with_its_secret_in_a_vault(fleet):
    """ansible/inventory.example.yml used as the README says: copied to inventory.yml beside
    the playbook, the API key secret in group_vars/phones/vault.yml encrypted by ansible-vault.
    Run here with the vault password from a file (not a prompt), `--tags config` (piphone is
    the one the first run installed) and extra vars that put each phone's config in a folder of
    its own on this machine."""
    fleet, _ = fleet
    site = fleet.folder / "site"
    shutil.copytree(ROOT / "ansible", site,
                    ignore=shutil.ignore_patterns("inventory.yml", "group_vars", "host_vars"))
    shutil.copy(site / "inventory.example.yml", site / "inventory.yml")
    vault = site / "group_vars" / "phones" / "vault.yml"
    vault.parent.mkdir(parents=True)
    vault.write_text(yaml.safe_dump({"vault_piphone_api_key_secret": SECRET}))
    password = site / "vault-password"
    password.write_text("correct horse battery staple\n")
    encrypted = subprocess.run([str(ANSIBLE_PLAYBOOK.parent / "ansible-vault"), "encrypt",
                                "--vault-password-file", str(password), str(vault)],
                               env=fleet.env(), capture_output=True, text=True, timeout=60)
    assert encrypted.returncode == 0, encrypted.stderr
    assert SECRET not in vault.read_text()
    here = site / "here.yml"
    here.write_text(yaml.safe_dump({
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "ansible_become": False, "piphone_prefix": str(fleet.prefix),
        "piphone_etc_dir": f"{site}/etc/{{{{ inventory_hostname }}}}",
        "piphone_user": _user(), "piphone_group": _group(),
        "piphone_restart_command": ["sh", "-c", 'echo "$1" >> "$0"',
                                    str(site / "restarts.log"), "{{ inventory_hostname }}"],
    }))
    played = fleet.run(ANSIBLE_PLAYBOOK, "-i", site / "inventory.yml", site / "playbook.yml",
                       "--vault-password-file", password, "--tags", "config", "-e", f"@{here}",
                       host="desk2.local")
    assert played.rc == 0, played.output
    assert SECRET not in played.output
    loaded = {host: appliance_config.load(site / "etc" / host / "piphone.toml")
              for host in ("desk1.local", "desk2.local", "lobby.local")}
    assert {h: c.account.identity for h, c in loaded.items()} == {
        "desk1.local": "alice", "desk2.local": "bob", "lobby.local": "lobby"}
    assert all(c.account.api_key_secret == SECRET and c.account.signaling_url is None
               for c in loaded.values())  # Twilio's edge, tokens minted with the vaulted key
    assert loaded["desk1.local"].audio.headset == "USB"
    assert loaded["desk2.local"].audio.headset == "Jabra"
    assert loaded["desk2.local"].pins.leds["warning"] == 20
    assert loaded["lobby.local"].phone.auto_answer_rings == 2
    assert loaded["lobby.local"].phone.dial_timeout == 4.0
    restarted = (site / "restarts.log").read_text().split()
    assert sorted(restarted) == ["desk1.local", "desk2.local", "lobby.local"]

    # The README's bad value: desk2's warning LED on the redial button's pin.
    desk2 = {"piphone_host_config": {"audio": {"headset": "Jabra"}, "pins": {"leds": {
        "ring": 12, "call": 13, "mute": 25, "warning": 16}}}}
    (site / "desk2.yml").write_text(yaml.safe_dump(desk2))
    bad = fleet.run(ANSIBLE_PLAYBOOK, "-i", site / "inventory.yml", site / "playbook.yml",
                    "--vault-password-file", password, "--tags", "config", "-e", f"@{here}",
                    "-e", f"@{site / 'desk2.yml'}", "--limit", "desk2.local", host="desk2.local")
    assert bad.rc != 0
    fatal = next(line for line in bad.output.splitlines() if line.startswith("fatal:"))
    readme = (ROOT / "README.md").read_text()
    assert fatal.replace(f"{site}/etc/desk2.local", "/etc/piphone") in readme.splitlines()
