"""scripts/deploy.sh HOST: the committed tree goes over ssh into a private folder on the Pi,
then install.sh --system runs from it with sudo on a terminal; tested with an ssh stand-in on
PATH that records what it was given, and one that runs the remote commands here, with /tmp a
folder of the test's own, to see where the installer runs from."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRIVATE = re.compile(r"/tmp/piphone-deploy\.[A-Za-z0-9]{10}")
RECORDING_SSH = """#!/bin/sh
n=$(ls "$LOG" | grep -c args)
printf '%s\\n' "$@" > "$LOG/call$n.args"
if [ -t 0 ]; then : ; else cat > "$LOG/call$n.stdin"; fi
[ "$n" = 0 ] && echo /tmp/piphone-deploy.AbCdEf0123
exit 0
"""
# Runs the remote command here, as a Pi's sshd would run it with sh, in a mount namespace
# where /tmp is the test's REMOTE_TMP (so a fixed /tmp path would land there too).
RUNNING_SSH = """#!/bin/sh
n=$(ls "$LOG" | grep -c args)
printf '%s\\n' "$@" > "$LOG/call$n.args"
[ "$1" = "-t" ] && shift
shift
exec env -u TMPDIR unshare --mount --propagation private \\
    sh -c 'mount --bind "$REMOTE_TMP" /tmp && exec sh -c "$0"' "$1"
"""
# What would run as root is recorded with the state of the folder it runs from; nothing else
# runs (`piphone check` fails: the config is not filled in), but cleaning up does.
FAKE_SUDO = """#!/bin/sh
if [ "$1" = bash ]; then
    folder=$(dirname "$(dirname "$2")")
    stat -c '%n %u:%a' "$folder" >> "$LOG/installs"
    exit 0
fi
[ "$1" = rm ] && exec "$@"
exit 1
"""


def deploy(tmp_path, *args: str, ssh: str = RECORDING_SSH) -> subprocess.CompletedProcess:
    """``tmp_path``: where the stand-ins and their log are; outside /tmp for RUNNING_SSH,
    whose remote side has another /tmp."""
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir(exist_ok=True)
    log.mkdir(exist_ok=True)
    for name, text in (("ssh", ssh), ("sudo", FAKE_SUDO)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    remote_tmp = tmp_path / "remote-tmp"  # the Pi's /tmp
    remote_tmp.mkdir(exist_ok=True)
    remote_tmp.chmod(0o1777)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", LOG=str(log),
               REMOTE_TMP=str(remote_tmp))
    return subprocess.run(["bash", str(ROOT / "scripts" / "deploy.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="piphone-deploy-test-", dir="/var/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_deploy_sends_the_tree_then_installs(tmp_path):
    result = deploy(tmp_path, "pi@phone.local")
    assert result.returncode == 0, result.stderr
    log = tmp_path / "log"
    first = (log / "call0.args").read_text().splitlines()
    assert first[0] == "pi@phone.local" and "mktemp -d" in first[1] and "tar -x" in first[1]
    with tarfile.open(log / "call0.stdin") as tar:
        names = tar.getnames()
    assert "scripts/install.sh" in names and "systemd/piphone.service" in names
    assert "firmware/piphone/appliance/service.py" in names
    second = (log / "call1.args").read_text().splitlines()
    assert second[:2] == ["-t", "pi@phone.local"]
    assert "d='/tmp/piphone-deploy.AbCdEf0123'" in second[2]
    assert 'sudo bash "$d/scripts/install.sh" --system' in second[2]
    assert "systemctl restart piphone" in second[2] and "trap" in second[2]
    # a running phone restarts with SIGUSR1, keeping a call in progress (the unit restarts it)
    assert "systemctl is-active --quiet piphone" in second[2]
    assert "systemctl kill --signal=SIGUSR1 --kill-whom=main piphone" in second[2]


def test_an_unexpected_folder_from_the_pi_is_not_used(tmp_path):
    ssh = RECORDING_SSH.replace("/tmp/piphone-deploy.AbCdEf0123", "/tmp/x'; reboot; '")
    result = deploy(tmp_path, "phone", ssh=ssh)
    assert result.returncode == 1 and "unexpected answer" in result.stderr
    assert not (tmp_path / "log" / "call1.args").exists()  # no second connection


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="a private /tmp needs root (unshare --mount)")
def test_the_installer_runs_as_root_only_from_a_folder_no_other_user_could_make(outside_tmp):
    """A fixed folder in the Pi's /tmp can be made first by any local user, who then owns it
    and swaps the installer before sudo runs it. Each deploy must use a fresh folder with a
    name nobody can guess, private to the deploying user, gone once the install ends."""
    for _ in range(2):
        result = deploy(outside_tmp, "pi@phone.local", ssh=RUNNING_SSH)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "fill in /etc/piphone" in result.stdout
    installs = (outside_tmp / "log" / "installs").read_text().splitlines()
    assert len(installs) == 2
    folders = [line.split()[0] for line in installs]
    assert folders[0] != folders[1], "a folder name another user could guess"
    for line in installs:
        folder, owner = line.split()
        assert PRIVATE.fullmatch(folder), folder
        assert owner == f"{os.getuid()}:700", f"{folder} is {owner}: others could change it"
    assert list((outside_tmp / "remote-tmp").iterdir()) == []  # nothing left behind


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                    reason="a private /tmp needs root (unshare --mount)")
def test_a_folder_swapped_for_a_link_is_not_installed_from(outside_tmp):
    """Were the folder replaced between the two connections, the install stops."""
    swap = RUNNING_SSH.replace('[ "$1" = "-t" ] && shift', '''[ "$1" = "-t" ] && {
    for d in "$REMOTE_TMP"/piphone-deploy.*; do
        mv "$d" "$d.orig" && mkdir "$d.evil" && ln -s "$d.evil" "$d"
    done
    shift
}''')
    result = deploy(outside_tmp, "phone", ssh=swap)
    assert result.returncode != 0 and "not the private folder" in result.stderr
    assert not (outside_tmp / "log" / "installs").exists()


def test_dry_run_and_usage(tmp_path):
    result = deploy(tmp_path, "--dry-run", "phone")
    assert result.returncode == 0 and result.stdout.count("+ ") == 2
    assert "mktemp -d" in result.stdout
    assert not list((tmp_path / "log").iterdir())  # ssh never ran
    assert subprocess.run(["bash", str(ROOT / "scripts" / "deploy.sh")],
                          capture_output=True).returncode == 2
