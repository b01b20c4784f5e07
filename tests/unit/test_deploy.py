"""scripts/deploy.sh HOST: the committed tree goes over ssh, then install.sh --system runs there
with sudo on a terminal; tested with an ssh stand-in on PATH that records what it was given."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAKE_SSH = """#!/bin/sh
n=$(ls "$LOG" | grep -c args)
printf '%s\\n' "$@" > "$LOG/call$n.args"
if [ -t 0 ]; then : ; else cat > "$LOG/call$n.stdin"; fi
"""


def deploy(tmp_path, *args: str) -> subprocess.CompletedProcess:
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    ssh = bin_dir / "ssh"
    ssh.write_text(FAKE_SSH)
    ssh.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", LOG=str(log))
    return subprocess.run(["bash", str(ROOT / "scripts" / "deploy.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_deploy_sends_the_tree_then_installs(tmp_path):
    result = deploy(tmp_path, "pi@phone.local")
    assert result.returncode == 0, result.stderr
    log = tmp_path / "log"
    first = (log / "call0.args").read_text().splitlines()
    assert first[0] == "pi@phone.local" and "tar -x -C /tmp/piphone-src" in first[1]
    with tarfile.open(log / "call0.stdin") as tar:
        names = tar.getnames()
    assert "scripts/install.sh" in names and "systemd/piphone.service" in names
    assert "firmware/piphone/appliance/service.py" in names
    second = (log / "call1.args").read_text().splitlines()
    assert second[:2] == ["-t", "pi@phone.local"]
    assert "sudo bash /tmp/piphone-src/scripts/install.sh --system" in second[2]
    assert "systemctl restart piphone" in second[2]


def test_dry_run_and_usage(tmp_path):
    result = deploy(tmp_path, "--dry-run", "phone")
    assert result.returncode == 0 and result.stdout.count("+ ") == 2
    assert not list((tmp_path / "log").iterdir())  # ssh never ran
    assert subprocess.run(["bash", str(ROOT / "scripts" / "deploy.sh")],
                          capture_output=True).returncode == 2
