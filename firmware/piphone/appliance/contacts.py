"""The phone's contacts (``[contacts]`` in piphone.toml): names for numbers, and speed dial.

::

    [contacts]
    Bob = "client:bob"
    "Alice Smith" = { number = "+15551234567", speed = 1 }

A caller's name is found by number (``name_of``), ignoring what only formats a number (spaces,
dashes, dots, brackets) and the ``client:`` prefix of a client identity, so ``client:bob``
finds ``bob`` and ``+1 555-123-4567`` finds ``+15551234567``. ``speed = N`` puts the contact
on speed-dial key N (input ``speed_N`` in [pins.inputs]).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..tomlconfig import TomlFile

NUMBER = re.compile(r"[0-9A-Za-z+*#:._@-]{1,64}")  # as the control socket's (dialable)
MAX_CONTACTS = 1000
MAX_NAME = 40
SPEED_KEYS = range(1, 10)
_FORMATTING = re.compile(r"[\s().-]")


@dataclass(frozen=True)
class Contact:
    name: str
    number: str  # what the phone dials: digits, +E.164, client:NAME, NAME
    speed: int | None = None  # speed-dial key 1-9


def _key(number: str) -> str:
    """What two numbers must share to be the same party."""
    bare = _FORMATTING.sub("", number).lower()
    return bare.removeprefix("client:")


@dataclass(frozen=True)
class Contacts:
    entries: tuple[Contact, ...] = ()

    def __iter__(self) -> Iterator[Contact]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def name_of(self, number: str | None) -> str | None:
        """The contact's name for ``number`` (a caller's From, a number dialled), or None."""
        if not number:
            return None
        key = _key(number)
        return next((c.name for c in self.entries if _key(c.number) == key), None)

    def speed_dial(self) -> dict[str, str]:
        """Speed-dial key ("1".."9") -> number."""
        return {str(c.speed): c.number for c in self.entries if c.speed is not None}

    def labelled(self, number: str | None) -> str | None:
        """``Name (number)`` for a contact, else the number as it is."""
        name = self.name_of(number)
        return f"{name} ({number})" if name else number


def load(toml: TomlFile) -> Contacts:
    """[contacts] from piphone.toml; a bad entry raises ConfigError naming file, key, line."""
    table = toml.section("contacts")
    if len(table) > MAX_CONTACTS:
        raise toml.error("contacts", None, f"{len(table)} contacts: at most {MAX_CONTACTS}")
    found: list[Contact] = []
    speeds: dict[int, str] = {}
    numbers: dict[str, str] = {}
    for name, value in table.items():
        def bad(message: str, key: str = name) -> Exception:
            return toml.error("contacts", key, message)

        if not name.strip() or len(name) > MAX_NAME or not name.isprintable():
            raise bad(f"a contact's name must be 1-{MAX_NAME} printable characters")
        if isinstance(value, str):
            value = {"number": value}
        if not isinstance(value, dict):
            raise bad('must be a number ("+15551234567") or a table like {number = '
                      '"+15551234567", speed = 1}')
        extra = set(value) - {"number", "speed"}
        if extra:
            raise bad(f"unknown key {sorted(extra)[0]!r} (known: number, speed)")
        number = value.get("number")
        if not isinstance(number, str) or not NUMBER.fullmatch(_FORMATTING.sub("", number)):
            raise bad(f"number must be digits, +E.164, client:NAME or NAME, not {number!r:.70}")
        number = _FORMATTING.sub("", number)
        speed = value.get("speed")
        if speed is not None:
            if isinstance(speed, bool) or not isinstance(speed, int) or speed not in SPEED_KEYS:
                raise bad(f"speed must be a speed-dial key 1-9, not {speed!r:.20}")
            if speed in speeds:
                raise bad(f"speed {speed} is also {speeds[speed]!r}'s key")
            speeds[speed] = name
        if _key(number) in numbers:
            raise bad(f"number {number} is also {numbers[_key(number)]!r}'s")
        numbers[_key(number)] = name
        found.append(Contact(name, number, speed))
    return Contacts(tuple(found))
