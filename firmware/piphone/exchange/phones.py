"""The phones' keys: each signs access tokens for one identity only.

``piphone exchange add-phone NAME`` issues a key, an id shaped like Twilio's API key SIDs
(``SK`` + 32 hex) and a secret, which the exchange accepts only on tokens for NAME
(auth.py); ``remove-phone NAME`` revokes it. A phone that mints its own tokens then holds its
own key and not the exchange's secret: a stolen phone gives away one identity.

The keys live in their own file beside exchange.toml (``<stem>-phones.toml``, or
``phone_keys``), mode 0600 and owned like exchange.toml. Not in exchange.toml: that is the
administrator's text with its comments, which a program should not rewrite, and the keys file
is rewritten whole (renamed into place) while the exchange runs. Not in the service's state
directory either: the keys are configuration an administrator manages, kept and backed up with
/etc/piphone, and read-only to the exchange (ProtectSystem=strict), so an exchange process
that was taken over still cannot add a key for itself.

The exchange re-reads the file when it changes: at every token check (one stat) and every
``WATCH_INTERVAL`` seconds, when a removed phone's live sessions are closed, so
``remove-phone`` takes effect within seconds and without a restart. A file that cannot be read
or is not private is a ConfigError at start; later, no phone key is accepted until it is fixed
(a revocation must never be missed), and that is logged.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import re
import secrets as random
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..tomlconfig import TomlFile, read_private, write_private
from ..voice import identity as identities
from ..voice.events import Emitter

log = logging.getLogger(__name__)

WATCH_INTERVAL = 2.0  # seconds between looks at the keys file
_SID = re.compile(r"SK[0-9a-f]{32}")
HEADER = """\
# piphone exchange: the phones' keys, written by `piphone exchange add-phone` and
# `remove-phone`. Each key signs access tokens for its phone's identity only. Private: 0600.
"""


@dataclass(frozen=True)
class PhoneKey:
    identity: str
    sid: str  # SK + 32 hex: the tokens' issuer (iss)
    secret: str = field(repr=False)
    created: str = ""  # ISO 8601, UTC


def read(path: Path) -> dict[str, PhoneKey]:
    """identity -> key, from the keys file (none if there is no file); ConfigError if bad."""
    if not path.exists() and not path.is_symlink():
        return {}
    toml = TomlFile(path, text=read_private(path), secret=True)
    for section in toml.data:
        if section != "phones":
            raise toml.error(section, None, "unknown section (the keys file has [phones.NAME])")
    keys: dict[str, PhoneKey] = {}
    sids: set[str] = set()
    for name, entry in toml.section("phones").items():
        where = f'phones."{name}"'
        if not identities.is_identity(name):
            raise toml.error("phones", None, f"{name!r} is not an identity ({identities.RULE})")
        if not isinstance(entry, dict) or set(entry) - {"key_sid", "secret", "created"}:
            raise toml.error(where, None, "must be a table of key_sid, secret and created")
        sid, secret = entry.get("key_sid"), entry.get("secret")
        if not isinstance(sid, str) or not _SID.fullmatch(sid) or sid in sids:
            raise toml.error(where, "key_sid", "must be SK and 32 hex digits, one per phone")
        if not isinstance(secret, str) or len(secret) < 32:
            raise toml.error(where, "secret", "must be a string of at least 32 characters")
        sids.add(sid)
        keys[name] = PhoneKey(name, sid, secret, str(entry.get("created", "")))
    return keys


def _write(path: Path, keys: dict[str, PhoneKey], like: Path | None) -> None:
    lines = [HEADER]
    for key in sorted(keys.values(), key=lambda k: k.identity):
        # identities and secrets hold no character a TOML basic string must escape
        lines.append(f'\n[phones."{key.identity}"]\nkey_sid = "{key.sid}"\n'
                     f'secret = "{key.secret}"\ncreated = "{key.created}"\n')
    write_private(path, "".join(lines), like=like)


def add(path: Path, identity: str, *, like: Path | None = None) -> PhoneKey:
    """Issue a key for ``identity`` and store it; ConfigError if it already has one."""
    if not identities.is_identity(identity):
        raise ConfigError(f"{identity!r} is not a client identity ({identities.RULE})")
    keys = read(path)
    if identity in keys:
        raise ConfigError(f"{path}: {identity} already has a key ({keys[identity].sid}); "
                          f"`remove-phone {identity}` first to issue a new one")
    created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    key = PhoneKey(identity, "SK" + random.token_hex(16), random.token_urlsafe(32), created)
    keys[identity] = key
    _write(path, keys, like)
    return key


def remove(path: Path, identity: str, *, like: Path | None = None) -> PhoneKey:
    """Revoke ``identity``'s key; ConfigError if it has none."""
    keys = read(path)
    key = keys.pop(identity, None)
    if key is None:
        raise ConfigError(f"{path}: no phone {identity!r} (`piphone exchange list-phones`)")
    _write(path, keys, like)
    return key


class PhoneKeys(Emitter):
    """The keys the running exchange accepts, kept in step with the file. Emits
    ``revoked(sids)`` when keys disappear from it."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._by_sid: dict[str, PhoneKey] = {}
        self._seen: tuple | None = None
        self._load(strict=True)

    def get(self, sid: object) -> PhoneKey | None:
        """The key with id ``sid`` (an unverified token's ``iss``), re-reading a changed file."""
        self.refresh()
        return self._by_sid.get(sid) if isinstance(sid, str) else None

    def refresh(self) -> None:
        if self._stamp() != self._seen:
            self._load(strict=False)

    async def watch(self, interval: float = WATCH_INTERVAL) -> None:
        while True:
            await asyncio.sleep(interval)
            self.refresh()

    def _stamp(self) -> tuple | None:
        try:
            info = os.lstat(self.path)
        except OSError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)

    def _load(self, strict: bool) -> None:
        self._seen = self._stamp()
        try:
            keys = {key.sid: key for key in read(self.path).values()}
        except ConfigError as exc:
            if strict:
                raise
            log.error("phone keys not accepted until the file is fixed: %s", exc)
            keys = {}  # fail closed: a revocation must not be missed
        revoked = set(self._by_sid) - set(keys)
        if keys.keys() != self._by_sid.keys():
            log.info("phone keys: %d (%s)", len(keys),
                     ", ".join(sorted(k.identity for k in keys.values())) or "none")
        self._by_sid = keys
        if revoked:
            self.emit("revoked", revoked)

    def __repr__(self) -> str:
        return f"<PhoneKeys {self.path}: {len(self._by_sid)}>"
