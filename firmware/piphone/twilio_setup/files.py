"""The phone's piphone.toml and 0600 secrets.toml, as `piphone twilio setup` writes them.

Setup owns piphone.toml's [account] keys that make the phone a Twilio client (identity,
account_sid, api_key_sid, twiml_app_sid; signaling_url goes) and the whole secrets.toml.
Everything else in piphone.toml (other sections, other [account] keys, comments) is kept as
written. It replaces a file only if it wrote it (its first line says so), if the file is the
untouched starter `install.sh --system` put there, or with --force; it checks what it would
write before anything changes at Twilio, and writes both files atomically, keeping the owner
of files it replaces (the service's user must still read secrets.toml).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..appliance import config as appliance_config
from ..errors import ConfigError
from .rest import SetupError

MARKER = "# Written by `piphone twilio setup`"
# [account] of systemd/piphone.toml.example, the starter install.sh --system installs
# (tests/unit/test_twilio_setup.py keeps the two equal).
STARTER_ACCOUNT = {"identity": "alice", "signaling_url": "ws://exchange.local:8089/signal"}
MANAGED_KEYS = ("identity", "signaling_url", "account_sid", "api_key_sid", "twiml_app_sid")
_HEADER = re.compile(r"^\s*\[\s*account\s*\]\s*(#.*)?$")
_TABLE = re.compile(r"^\s*\[")
_MANAGED = re.compile(r"^\s*#?\s*(" + "|".join(MANAGED_KEYS) + r")\s*=")
_BLOCK_COMMENT = "# the phone's Twilio identity, account, API key and TwiML App (setup's)"
_CONTINUED_COMMENT = re.compile(r"^\s*#\s{2,}#")  # the example's comment running on


@dataclass(frozen=True)
class LocalFiles:
    """What is on disk now, read before anything changes."""

    config: Path
    secrets: Path
    config_text: str | None  # None: no piphone.toml yet
    secrets_exists: bool
    identity: str | None  # the [account] identity the user chose (not the starter's)
    account_sid: str | None
    api_key_sid: str | None
    twiml_app_sid: str | None
    api_key_secret: str | None = field(default=None, repr=False)

    def actions(self, account: dict[str, str], api_key_secret: str | None
                ) -> list[tuple[str, str]]:
        """(verb, what) for the plan: ``write`` a new file, ``update`` one, or ``keep`` it as it
        is (``api_key_secret`` None: a new key's, not known yet)."""
        if self.config_text is None:
            config = ("write", f"{self.config}")
        elif config_text(self, account) == self.config_text:
            config = ("keep", f"{self.config}")
        else:
            config = ("update", f"{self.config} ([account]; the rest kept)")
        if not self.secrets_exists:
            secrets = ("write", f"{self.secrets} (mode 0600)")
        elif api_key_secret is not None and api_key_secret == self.api_key_secret:
            secrets = ("keep", f"{self.secrets}")
        else:
            secrets = ("update", f"{self.secrets} (mode 0600)")
        return [config, secrets]


def inspect(config: Path, *, force: bool) -> LocalFiles:
    """Read piphone.toml and secrets.toml; refuse (SetupError) what setup may not replace."""
    config = Path(config).absolute()
    text = _read(config)
    account: dict = {}
    if text is not None:
        account = _parse(config, text).get("account", {})
        if not isinstance(account, dict):
            raise SetupError(f"{config}: account must be an [account] table")
        ours = text.startswith(MARKER) or account == STARTER_ACCOUNT
        if not ours and not force:
            raise SetupError(
                f"{config} exists and `piphone twilio setup` did not write it: it would set "
                f"[account] {', '.join(MANAGED_KEYS[2:])} and identity, remove signaling_url, "
                "and keep everything else; run it again with --force to allow that")
    secrets = Path(account.get("secrets", appliance_config.SECRETS_NAME))
    secrets = secrets if secrets.is_absolute() else config.parent / secrets
    secrets_text = _read(secrets)
    secret = None
    if secrets_text is not None:
        held = _parse(secrets, secrets_text).get("account", {})
        held = held if isinstance(held, dict) else {"?": held}
        if held and not secrets_text.startswith(MARKER) and not force:
            raise SetupError(
                f"{secrets} exists and `piphone twilio setup` did not write it: it would "
                f"replace it with the new API key's secret; run it again with --force to allow "
                "that")
        secret = held.get("api_key_secret") if isinstance(held.get("api_key_secret"), str) \
            else None
    for path in (config, secrets):
        _check_writable(path)
    is_starter = account == STARTER_ACCOUNT

    def text_of(key: str) -> str | None:
        value = account.get(key)
        return value if isinstance(value, str) else None

    return LocalFiles(
        config=config, secrets=secrets, config_text=text, secrets_exists=secrets_text is not None,
        identity=None if is_starter else text_of("identity"), account_sid=text_of("account_sid"),
        api_key_sid=text_of("api_key_sid"), twiml_app_sid=text_of("twiml_app_sid"),
        api_key_secret=secret)


def config_text(local: LocalFiles, account: dict[str, str]) -> str:
    """piphone.toml with [account]'s setup keys set to ``account`` and the rest kept."""
    block = [_BLOCK_COMMENT] + [f"{key} = {json.dumps(value)}" for key, value in account.items()]
    if local.config_text is None:
        lines = [f"{MARKER}: it rewrites [account]'s identity, SIDs",
                 "# and signaling_url and keeps the rest. Every other setting is documented in",
                 "# systemd/piphone.toml.example.", "", "[account]", *block]
        return "\n".join(lines) + "\n"
    lines = local.config_text.splitlines()
    start = next((i for i, line in enumerate(lines) if _HEADER.match(line)), None)
    if start is None:
        lines += ["", "[account]", *block]
    else:
        end = next((i for i in range(start + 1, len(lines)) if _TABLE.match(lines[i])),
                   len(lines))
        kept, dropping = [], False
        for line in lines[start + 1:end]:
            if (_MANAGED.match(line) or line == _BLOCK_COMMENT
                    or (dropping and _CONTINUED_COMMENT.match(line))):
                dropping = True
                continue
            dropping = False
            kept.append(line)
        lines[start + 1:end] = block + kept
    if not local.config_text.startswith(MARKER):
        lines.insert(0, f"{MARKER}: it rewrites [account]'s identity, SIDs and signaling_url.")
    return "\n".join(lines) + "\n"


def secrets_text(api_key_secret: str) -> str:
    return (f"{MARKER}: the secret of piphone.toml's api_key_sid.\n"
            f"[account]\napi_key_secret = {json.dumps(api_key_secret)}\n")


def check(local: LocalFiles, account: dict[str, str], api_key_secret: str) -> None:
    """Load what would be written, as the phone will: a ConfigError becomes a SetupError."""
    _write(local, account, api_key_secret, dry=True)


def write(local: LocalFiles, account: dict[str, str], api_key_secret: str) -> list[Path]:
    """Write both files (each only if it changes); the paths written."""
    return _write(local, account, api_key_secret, dry=False)


def _write(local: LocalFiles, account: dict[str, str], secret: str, *, dry: bool
           ) -> list[Path]:
    """Both files, each first written beside its target (so that the final rename is atomic),
    loaded as the phone will load them, then renamed into place; a dry run writes them in a
    temporary folder and only loads them."""
    with contextlib.ExitStack() as cleanup:
        if dry:
            scratch = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="piphone-")))
            folders = (scratch, scratch)
        else:
            for path in (local.secrets, local.config):
                path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            folders = (local.secrets.parent, local.config.parent)
        secrets_tmp = _temp(folders[0], local.secrets.name, secrets_text(secret), 0o600, cleanup)
        config_tmp = _temp(folders[1], local.config.name, config_text(local, account), 0o644,
                           cleanup)
        try:
            appliance_config.load(config_tmp, secrets_tmp)
        except ConfigError as exc:
            message = str(exc).replace(str(config_tmp), str(local.config)).replace(
                str(secrets_tmp), str(local.secrets))
            raise SetupError(f"the config it would write does not load: {message}") from None
        written = []
        if not dry:
            for tmp, target in ((secrets_tmp, local.secrets), (config_tmp, local.config)):
                if target.exists() and target.read_bytes() == tmp.read_bytes():
                    continue  # as it was: left alone (its time stamp, its inode)
                _keep_owner(tmp, target)
                os.replace(tmp, target)
                written.append(target)
        return written


def _temp(folder: Path, name: str, text: str, mode: int, cleanup: contextlib.ExitStack) -> Path:
    path = folder / f".{name}.setup-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    cleanup.callback(lambda: path.unlink(missing_ok=True))
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, mode)  # whatever the umask
    return path


def _keep_owner(tmp: Path, target: Path) -> None:
    try:
        st = target.stat()
    except FileNotFoundError:
        return
    if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
        try:
            os.chown(tmp, st.st_uid, st.st_gid)
        except PermissionError:
            raise SetupError(f"{target} belongs to another user: run this with sudo, so that "
                             "it keeps its owner") from None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except PermissionError:
        raise SetupError(f"{path}: cannot read it (run this with sudo)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupError(f"{path}: cannot read it: {exc}") from None


def _parse(path: Path, text: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SetupError(f"{path}: {exc} (fix or remove it, then run this again)") from None


def _check_writable(path: Path) -> None:
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SetupError(f"{path}: cannot write it (run this with sudo, or choose another "
                         "--config)")
