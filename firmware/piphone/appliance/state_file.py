"""The phone's own settings that outlive a restart: call volume, ringer volume, do-not-disturb.

Kept as a small JSON object in the state directory (systemd's ``StateDirectory=piphone``:
``/var/lib/piphone/state.json``; ``[phone] state_file``). The file is the phone's to write but
is read as untrusted input: anything wrong with it (missing keys, a value out of range, not
JSON, too big, not a regular file, a symbolic link) is reported once in one log line that
names the file and the problem, and the phone starts from the configured defaults, written
over the bad file. It never stops the phone.

A write is whole or not at all: a temporary file in the same folder, flushed and fsynced, then
renamed over the old one (a power cut leaves the old settings or the new, never half). Writes
happen on a key press (a volume or DND key), a few hundred bytes each: done on the loop.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from ..errors import ConfigError
from ..tomlconfig import write_public

log = logging.getLogger(__name__)

VOLUME_STEPS = 10  # volume steps run 0 (silent) to VOLUME_STEPS
MAX_BYTES = 4096  # the file is ~60 bytes; anything bigger is not ours
VERSION = 1


@dataclass(frozen=True)
class Settings:
    """What the phone keeps across restarts."""

    call_volume: int = 7  # step 0-10 of the call audio (and tones) in the headset
    ringer_volume: int = 7  # step 0-10 of the ringer (7: the configured ring_level)
    dnd: bool = False  # do-not-disturb on

    def __post_init__(self) -> None:
        problem = problem_of(asdict(self))
        if problem:
            raise ValueError(problem)


class HasSettings(Protocol):
    """The phone, as far as its kept settings go."""

    volume_step: int
    ringer_step: int
    dnd: bool


def settings_of(phone: HasSettings) -> Settings:
    """What the state file keeps of ``phone``."""
    return Settings(call_volume=phone.volume_step, ringer_volume=phone.ringer_step,
                    dnd=phone.dnd)


def problem_of(data: object) -> str | None:
    """What is wrong with a decoded state object (None: nothing)."""
    if not isinstance(data, dict):
        return f"must be a JSON object, not {type(data).__name__}"
    for key in ("call_volume", "ringer_volume"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{key} must be a whole number 0-{VOLUME_STEPS}, not {value!r:.40}"
        if not 0 <= value <= VOLUME_STEPS:
            return f"{key} must be 0-{VOLUME_STEPS}, not {value}"
    if not isinstance(data.get("dnd"), bool):
        return f"dnd must be true or false, not {data.get('dnd')!r:.40}"
    return None


def load(path: str | Path, defaults: Settings) -> tuple[Settings, str | None]:
    """The saved settings and None; or ``defaults`` and what is wrong with the file when it is
    unusable (logged, with the file's name: the caller writes the defaults over it). No file
    yet is not a problem. Never raises."""
    path = Path(path)
    try:
        data = json.loads(_read(path))
        problem = problem_of(data)
    except FileNotFoundError:
        return defaults, None
    except _Unusable as exc:
        problem = str(exc)
    except ValueError as exc:
        problem = f"not JSON ({exc})"
    if problem is not None:
        log.error("state file %s: %s; replaced by the defaults", path, problem)
        return defaults, problem
    return Settings(call_volume=data["call_volume"], ringer_volume=data["ringer_volume"],
                    dnd=data["dnd"]), None


class _Unusable(Exception):
    """The file exists but cannot be what we wrote."""


def _read(path: Path) -> str:
    # O_NOFOLLOW: a link planted in the state directory is not followed; O_NONBLOCK: a FIFO
    # under the name does not block the start.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Unusable("is a symbolic link, not the phone's file") from None
        raise _Unusable(f"cannot read it ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Unusable("not a regular file")
        data = os.read(fd, MAX_BYTES + 1)
    except OSError as exc:
        raise _Unusable(f"cannot read it ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise _Unusable(f"bigger than {MAX_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unusable("not UTF-8 text") from None


def save(path: str | Path, settings: Settings) -> bool:
    """Write ``settings`` atomically; False (logged) if it could not be written: the phone
    goes on with the settings in memory."""
    text = json.dumps({"version": VERSION, **asdict(settings)}, sort_keys=True) + "\n"
    try:
        write_public(path, text)  # a temporary file renamed over the old one
    except ConfigError as exc:
        log.error("state file %s: cannot write it (%s); the settings last until a restart",
                  path, exc)
        return False
    return True
