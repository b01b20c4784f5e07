"""Reading TOML into checked settings, with errors that name the file, key and line.

tomllib reports syntax errors with a line but forgets positions once parsed, so a wrong
value is located by finding its key in the text (a small hand-written scan: no TOML library
on PyPI keeps positions for values and is also strict about the spec).
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ConfigError


class TomlFile:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read: {exc.strerror}") from None
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
            check: Callable[[Any], str | None] | None = None) -> Any:
        """``section.key`` of type ``kind``; ``check`` returns a message if the value is wrong."""
        table = self.section(section)
        if key not in table:
            if default is ...:
                raise self.error(section, None, f"missing key {key!r}")
            return default
        value = table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.error(section, key, f"must be {names}, not {type(value).__name__} "
                             f"({value!r})")
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
