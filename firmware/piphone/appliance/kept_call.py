"""The phone's open calls, kept across a restart of its own process.

While a call is open the service keeps its connect token (voice/connect_token.py) in
``call.json`` under the runtime directory (``$RUNTIME_DIRECTORY``, which systemd sets for
``RuntimeDirectory=piphone``; else /run/piphone): mode 0600, written whole (a temporary file
renamed over it), removed when the call ends. A phone started again while the file is there (a
crash and systemd's restart, the watchdog, an upgrade) resumes the call with the token, within
the server's reconnect window (the exchange's ``reconnect_grace``); the far party hears a gap.
A call on hold is kept as such (and resumed on hold: its far party hears the hold music again
after the gap), and with call waiting the file keeps both calls, the active one first.
/run is a tmpfs: a reboot forgets the call, as it should.

The file is read as untrusted input: a symlink, a file of another user or one others may
write, anything over ``MAX_BYTES``, bad JSON or a token that does not decode is reported (one
line, never its content: the token is a secret) and removed, and the phone starts as usual.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from collections.abc import Callable, Sequence
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
MAX_CALLS = 2  # the phone follows at most two calls (call waiting: one of them on hold)


@dataclass(frozen=True)
class KeptCall:
    token: str = field(repr=False)  # the connect token: a secret
    peer: str | None = None  # who the call is with, for the status line
    off_hook: bool = False  # the handset was lifted while the call was up
    held: bool = False  # the call was on hold


def runtime_directory() -> Path:
    """Where the service keeps what lasts until reboot: systemd's ``RUNTIME_DIRECTORY`` (the
    first, if it names several), else /run/piphone."""
    named = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    return Path(named) if named else Path(paths.RUNTIME)


class CallKeeper:
    """Saves, loads and clears the kept call in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE_NAME
        self._saved: tuple[KeptCall, ...] = ()

    def follow(self, calls: Sequence[tuple[Call, str | None, bool]], *, off_hook: bool,
               has_call: bool) -> None:
        """Keep the connect tokens of ``calls`` (call, peer, on hold: the open calls, the
        active one first); forget them once the phone has no call at all (``has_call``: one
        is being set up or resumed)."""
        kept = tuple(KeptCall(call.connect_token, peer, off_hook, held)
                     for call, peer, held in calls if call.connect_token is not None)
        if kept:
            self.save(kept)
        elif not has_call:
            self.clear()

    def resume(self, kept: list[KeptCall], fire: Callable[..., bool], device: Device, *,
               lifted: bool) -> list[asyncio.Task[None]]:
        """Take back the calls the last run kept (``load()``), the active one first, through
        the phone's triggers (``fire``): one on hold stays on hold; one whose handset was put
        down meanwhile (``lifted`` is False) is ended instead. Returns the ending tasks."""
        ending = []
        trigger = "resume_call"
        for call in kept:
            if call.off_hook and not call.held and not lifted:
                log.info("the handset was put down while the phone restarted: ending the call")
                ending.append(asyncio.create_task(self.end(device, call.token)))
                continue
            log.info("resuming the %scall with %s that the last run kept",
                     "held " if call.held else "", call.peer or "someone")
            fire(trigger, token=call.token, peer=call.peer, held=call.held)
            trigger = "resume_held"  # a second call was on hold behind the first
        return ending

    async def end(self, device: Device, token: str) -> None:
        """Hang up the call ``token`` names (its handset was put down while the phone was
        away), then forget it."""
        try:
            (await device.connect(connect_token=token)).disconnect()
        except Exception as exc:  # the call is gone already: nothing to end
            log.info("the kept call could not be ended: %s", exc)
        others = tuple(k for k in self._saved if k.token != token)
        self.save(others) if others else self.clear()

    def save(self, kept: tuple[KeptCall, ...]) -> None:
        """Keep ``kept`` (nothing is written if it is what the file holds); a failure is
        logged (the calls go on, they just cannot survive a restart)."""
        if kept == self._saved:
            return
        text = json.dumps({"calls": [{"connect_token": k.token, "peer": k.peer,
                                      "off_hook": k.off_hook, "held": k.held}
                                     for k in kept[:MAX_CALLS]]})
        try:
            write_private(self.path, text)  # 0600, a temporary file renamed over the old one
        except ConfigError as exc:
            log.warning("cannot keep the call in %s (it will not survive a restart): %s",
                        self.path, exc)
            return
        self._saved = kept

    def clear(self) -> None:
        """No call to keep (idempotent)."""
        self._saved = ()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove %s: %s", self.path, exc.strerror or exc)

    def load(self) -> list[KeptCall] | None:
        """The calls a previous run kept (the active one first), or None (a bad file is
        reported and removed)."""
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
        # {"calls": [...]}; a single call's object is what a run before hold wrote (an
        # upgrade's restart reads the file the old version kept)
        entries = fields.get("calls") if "calls" in fields else [fields]
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_CALLS:
            return self._refuse(f"does not hold 1 to {MAX_CALLS} calls")
        kept = []
        for entry in entries:
            if not isinstance(entry, dict):
                return self._refuse("holds a call that is not a JSON object")
            token, peer = entry.get("connect_token"), entry.get("peer")
            try:
                connect_token.decode(token)
            except InvalidArgumentError as exc:
                return self._refuse(f"holds no valid connect token ({exc})")
            assert isinstance(token, str)  # decode() took it
            if peer is not None and not (isinstance(peer, str) and is_party(peer)):
                peer = None  # shown and logged: only a plain identity, number or SIP address
            kept.append(KeptCall(token, peer, entry.get("off_hook", False) is True,
                                 entry.get("held", False) is True))
        self._saved = tuple(kept)  # what the file holds
        return kept

    def _refuse(self, why: str) -> list[KeptCall] | None:
        """Report and remove a kept call that cannot be used: None."""
        log.warning("ignoring the kept call %s: it %s", self.path, why)
        self.clear()
        return None
