"""Run a command as a user's machine would see the internet, on loopback: in a new mount
namespace whose /etc/hosts sends the given host names (Twilio's edge, its REST API) to
127.0.0.1, where a test serves a stand-in under that name.

The test suite already runs in a network namespace with only ``lo`` (scripts/test.sh), so the
stand-in and the command share that loopback and nothing can leave the machine. The mount
namespace is the command's own: the test process and every other test keep the real
/etc/hosts. (A process with threads cannot enter a new mount namespace itself, hence a child.)
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

# The host names of Twilio that piphone talks to: the signaling edges, the REST API.
TWILIO_EDGE = "voice-js.roaming.twilio.com"


def hosts_file(folder: Path, names: Iterable[str], address: str = "127.0.0.1") -> Path:
    path = folder / "hosts"
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    lines += [f"{address} {name}" for name in names]
    path.write_text("\n".join(lines) + "\n")
    return path


def with_hosts(folder: Path, names: Iterable[str], argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped so that it runs with ``names`` resolving to 127.0.0.1."""
    hosts = hosts_file(folder, names)
    unshare = shutil.which("unshare") or "unshare"
    # --propagation private: the bind mount stays in the child's namespace.
    return [unshare, "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts), *argv]
