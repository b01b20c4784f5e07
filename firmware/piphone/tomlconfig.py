"""Reading TOML into checked settings, with errors that name the file, key and line.

tomllib reports syntax errors with a line but forgets positions once parsed, so a wrong
value is located by finding its key in the text (a small hand-written scan: no TOML library
on PyPI keeps positions for values and is also strict about the spec).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import re
import stat
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ConfigError

MAX_PRIVATE_BYTES = 1 << 20  # a secrets file is a few lines; nothing bigger is read
SYSTEM_UID_MAX = 999  # Debian's SYS_UID_MAX: accounts below are system accounts (piphone's)


def read_private(path: str | Path) -> str:
    """The text of a file that holds secrets, refused unless only its owner may read it.

    Checked on the open file itself (fstat), so nothing can swap the file between the check
    and the read: a regular file (opened with O_NOFOLLOW: a symbolic link is refused, name the
    file itself), owned by this process's user or root, with no permission for group or
    others. Root also reads a system account's file (the piphone user owns the service's
    secrets: `sudo piphone check` reads them), never an ordinary login user's. O_NONBLOCK keeps
    a FIFO planted under the name from blocking the open."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{path}: is a symbolic link; secrets are read only from the "
                              "file itself (name it instead of the link)") from None
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{path}: not a regular file")
        user = os.geteuid()
        system = user == 0 and info.st_uid <= SYSTEM_UID_MAX
        if info.st_uid not in (user, 0) and not system:
            raise ConfigError(f"{path}: owned by uid {info.st_uid}, not by this user ({user}) "
                              f"or root: another user could have written these secrets "
                              f"(chown it to the user the service runs as)")
        if info.st_mode & 0o077:
            raise ConfigError(f"{path}: mode {stat.S_IMODE(info.st_mode):04o} lets others read "
                              f"the secrets; it must be 0600 (chmod 600 {path})")
        if info.st_size > MAX_PRIVATE_BYTES:
            raise ConfigError(f"{path}: {info.st_size} bytes is too big for a secrets file")
        data = os.read(fd, MAX_PRIVATE_BYTES + 1)
        while len(data) <= MAX_PRIVATE_BYTES and (more := os.read(fd, MAX_PRIVATE_BYTES)):
            data += more
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None


def write_private(path: str | Path, text: str, *, like: Path | None = None,
                  replace: bool = True) -> Path:
    """Write a secrets file: mode 0600 from its first byte, whole or not at all (a temporary
    file in the same folder, renamed over the old one, so a reader never sees half of it).
    ``like``: when run as root, give it that file's owner (the service's user must read it).
    ``replace=False``: refuse to overwrite."""
    return _write(Path(path), text, 0o600, like, replace)


def write_public(path: str | Path, text: str, *, like: Path | None = None) -> Path:
    """Write a file others may read (a certificate), the same way as write_private."""
    return _write(Path(path), text, 0o644, like, True)


def _write(path: Path, text: str, mode: int, like: Path | None, replace: bool) -> Path:
    if not replace and (path.exists() or path.is_symlink()):
        raise ConfigError(f"{path}: already exists; not overwriting")
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()  # left by a run that died mid-write with this process id
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)  # whatever the umask
            if like is not None and os.geteuid() == 0:
                owner = os.stat(like)
                os.fchown(f.fileno(), owner.st_uid, owner.st_gid)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(temp, path)
        else:
            os.link(temp, path)  # fails if the name was taken meanwhile
            os.unlink(temp)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise ConfigError(f"{path}: cannot write: {exc.strerror}") from None
    return path


class TomlFile:
    """A parsed TOML file. ``text``: its contents already read (read_private); ``secret``:
    a file of secrets, whose values never appear in an error message."""

    def __init__(self, path: str | Path, text: str | None = None, secret: bool = False) -> None:
        self.path = Path(path)
        self.secret = secret
        if text is None:
            try:
                text = self.path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"{self.path}: cannot read: {exc.strerror}") from None
        self.text = text
        try:
            self.data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{self.path}: {exc}") from None

    def line_of(self, section: str, key: str | None = None) -> int | None:
        """1-based line of ``[section]`` or of ``key`` inside it (best effort)."""
        lines = self.text.splitlines()
        header = re.compile(r"^\s*\[\s*" + re.escape(section) + r"\s*\]\s*(#.*)?$")
        start = next((i for i, line in enumerate(lines) if header.match(line)), None)
        if start is None:
            return None
        if key is None:
            return start + 1
        pattern = re.compile(r'^\s*("?)' + re.escape(key) + r'\1\s*=')
        for i in range(start + 1, len(lines)):
            if re.match(r"^\s*\[", lines[i]):
                break
            if pattern.match(lines[i]):
                return i + 1
        return start + 1

    def error(self, section: str, key: str | None, message: str) -> ConfigError:
        line = self.line_of(section, key)
        where = f"{self.path}" + (f", line {line}" if line else "")
        name = f"{section}.{key}" if key else section
        return ConfigError(f"{where}: {name}: {message}")

    def section(self, name: str, required: bool = False) -> dict[str, Any]:
        value = self.data.get(name)
        if value is None:
            if required:
                raise ConfigError(f"{self.path}: missing section [{name}]")
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{self.path}: {name} must be a [{name}] table")
        return value

    def get(self, section: str, key: str, kind: type | tuple[type, ...], default: Any = ...,
            check: Callable[[Any], str | None] | None = None, secret: bool = False) -> Any:
        """``section.key`` of type ``kind``; ``check`` returns a message if the value is wrong.
        A ``secret`` value (or any in a secret file) is never shown in the error (the journal
        keeps what a service prints)."""
        table = self.section(section)
        if key not in table:
            if default is ...:
                raise self.error(section, None, f"missing key {key!r}")
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            shown = "" if secret or self.secret else f" ({value!r})"
            raise self.error(section, key, f"must be {names}, not {type(value).__name__}{shown}")
        if check is not None:
            problem = check(value)
            if problem:
                raise self.error(section, key, problem)
        return value

    def unknown_keys(self, section: str, known: set[str]) -> None:
        for key in self.section(section):
            if key not in known:
                raise self.error(section, key, f"unknown key (known: {', '.join(sorted(known))})")


def positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "must be a port number 0-65535"


def sid(prefix: str) -> Callable[[str], str | None]:
    """A check for Twilio-style ids: ``prefix`` and 32 hex digits (AC..., SK...)."""
    pattern = re.compile(prefix + r"[0-9a-f]{32}")

    def check(value: str) -> str | None:
        return None if pattern.fullmatch(value) else f"must be {prefix} and 32 hex digits"

    return check


def ip_addresses(value: list) -> str | None:
    """A check that every item of a list is an IPv4 or IPv6 address."""
    for item in value:
        try:
            ipaddress.ip_address(item)
        except (ValueError, TypeError):
            return f"{item!r} is not an IP address"
    return None
