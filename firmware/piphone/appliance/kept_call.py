"""The phone's open call, kept across a restart of its own process.

While a call is open the service keeps its connect token (voice/connect_token.py) in
``call.json`` under the runtime directory (``$RUNTIME_DIRECTORY``, which systemd sets for
``RuntimeDirectory=piphone``; else /run/piphone): mode 0600, written whole (a temporary file
renamed over it), removed when the call ends. A phone started again while the file is there (a
crash and systemd's restart, the watchdog, an upgrade) resumes the call with the token, within
the server's reconnect window (the exchange's ``reconnect_grace``); the far party hears a gap.
/run is a tmpfs: a reboot forgets the call, as it should.

The file is read as untrusted input: a symlink, a file of another user or one others may
write, anything over ``MAX_BYTES``, bad JSON or a token that does not decode is reported (one
line, never its content: the token is a secret) and removed, and the phone starts as usual.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import paths
from ..errors import ConfigError, InvalidArgumentError
from ..tomlconfig import write_private
from ..voice import connect_token
from ..voice.identity import is_party

if TYPE_CHECKING:
    from ..voice import Call, Device

log = logging.getLogger(__name__)

FILE_NAME = "call.json"
MAX_BYTES = 32 * 1024  # a token is a few hundred bytes


@dataclass(frozen=True)
class KeptCall:
    token: str = field(repr=False)  # the connect token: a secret
    peer: str | None = None  # who the call is with, for the status line
    off_hook: bool = False  # the handset was lifted while the call was up


def runtime_directory() -> Path:
    """Where the service keeps what lasts until reboot: systemd's ``RUNTIME_DIRECTORY`` (the
    first, if it names several), else /run/piphone."""
    named = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return Path(named) if named else Path(paths.RUNTIME)


class CallKeeper:
    """Saves, loads and clears the kept call in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE_NAME
        self._saved: KeptCall | None = None

    def follow(self, call: Call | None, peer: str | None, *, off_hook: bool,
               has_call: bool) -> None:
        """Keep the connect token of ``call`` (the open call, or None); forget it once the
        phone has no call at all (``has_call``: one is being set up, held or resumed)."""
        token = call.connect_token if call is not None else None
        if token is not None:
            self.save(KeptCall(token, peer, off_hook))
        elif not has_call:
            self.clear()

    async def end(self, device: Device, token: str) -> None:
        """Hang up the call ``token`` names (its handset was put down while the phone was
        away), then forget it."""
        try:
            (await device.connect(connect_token=token)).disconnect()
        except Exception as exc:  # the call is gone already: nothing to end
            log.info("the kept call could not be ended: %s", exc)
        self.clear()

    def save(self, kept: KeptCall) -> None:
        """Keep ``kept`` (nothing is written if it is what the file holds); a failure is
        logged (the call goes on, it just cannot survive a restart)."""
        if kept == self._saved:
            return
        text = json.dumps({"connect_token": kept.token, "peer": kept.peer,
                           "off_hook": kept.off_hook})
        try:
            write_private(self.path, text)  # 0600, a temporary file renamed over the old one
        except ConfigError as exc:
            log.warning("cannot keep the call in %s (it will not survive a restart): %s",
                        self.path, exc)
            return
        self._saved = kept

    def clear(self) -> None:
        """No call to keep (idempotent)."""
        self._saved = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove %s: %s", self.path, exc.strerror or exc)

    def load(self) -> KeptCall | None:
        """The call a previous run kept, or None (a bad file is reported and removed)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:  # ELOOP: a symlink; EACCES: not ours
            return self._refuse(f"cannot be opened ({exc.strerror or exc})")
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                return self._refuse("is not a regular file")
            if info.st_uid != os.geteuid() or info.st_mode & 0o077:
                return self._refuse("is not the service's own 0600 file")
            data = file.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            return self._refuse(f"is over {MAX_BYTES} bytes")
        try:
            fields = json.loads(data.decode("utf-8"))
        except (UnicodeError, ValueError):
            return self._refuse("is not JSON")
        if not isinstance(fields, dict):
            return self._refuse("is not a JSON object")
        token, peer, off_hook = (fields.get("connect_token"), fields.get("peer"),
                                 fields.get("off_hook", False))
        try:
            connect_token.decode(token)
        except InvalidArgumentError as exc:
            return self._refuse(f"holds no valid connect token ({exc})")
        assert isinstance(token, str)  # decode() took it
        if peer is not None and not (isinstance(peer, str) and is_party(peer)):
            peer = None  # shown and logged: only a plain identity, number or SIP address
        return KeptCall(token, peer, off_hook is True)

    def _refuse(self, why: str) -> KeptCall | None:
        """Report and remove a kept call that cannot be used: None."""
        log.warning("ignoring the kept call %s: it %s", self.path, why)
        self.clear()
        return None
