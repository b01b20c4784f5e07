"""The exchange's configuration (exchange.toml) as frozen settings, checked at load.

exchange.toml holds the signing secret: it is read like any secrets file (tomlconfig's
read_private: not a link, owned by this user or root, mode 0600) and the secret stays out of
every repr and error message.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..tomlconfig import TomlFile, ip_addresses, port, positive, read_private, sid, write_private
from ..voice import identity as identities
from ..voice.rtc.settings import CODECS, MAX_REMOTE_CANDIDATES, codec_list_problem
from . import voicemail_settings
from .voicemail_settings import VoicemailSettings

DEFAULT_PORT = 8089
DEFAULT_MAX_CALLS = 12
KNOWN_LINES = ("echo", "tone")


@dataclass(frozen=True)
class Limits:
    """What one client may make the exchange hold (``[limits]`` in exchange.toml)."""

    # Calls (calls.py and its helpers). An identity's concurrent calls, as caller or callee,
    # besides the exchange-wide max_calls: over it a caller is refused with 31005, a callee
    # is busy (31486). Four is a phone's call plus a few calls to the echo test.
    max_calls_per_identity: int = 4
    # Seconds a leg's media has to connect (ICE+DTLS) once it is answered; then the call ends
    # with 53405. On loopback it takes about 50 ms and on a LAN well under a second. A media
    # restart (reinvite) has reconnect_grace if that is longer, as a client restarts for 30 s.
    media_timeout: float = 10.0
    max_call_length: float = 4 * 3600.0  # seconds from answer; then a hangup saying so; 0: none
    # Media restarts (reinvites) one leg may ask for in any minute (more: 31206); a phone whose
    # network went away for 30 s makes about 30. One is answered at a time (31005 meanwhile).
    reinvites_per_minute: int = 60
    # Sockets and sessions (server.py, session.py). A refusal is error 31206
    # (RateExceededError), logged once a minute per address or identity, not per attempt.
    max_sessions: int = 200  # signaling sockets open at once, from everyone
    max_sockets_per_address: int = 32  # sockets open at once from one IP address
    max_unauthenticated_per_address: int = 8  # of those, sockets without a valid token yet
    max_registrations_per_identity: int = 10  # devices registered as one identity (a call
    #                                           rings each: a fork is a peer connection)
    send_queue: int = 128  # frames waiting to go to one client; full: it is disconnected
    max_bad_frames: int = 20  # malformed or refused frames one session may send a minute
    heartbeat_timeout: float = 15.0  # seconds a session may stay silent (no heartbeat echo)
    feedback_per_minute: int = 20  # feedback posts one identity may make a minute
    messages_per_minute: int = 120  # call messages one party may send in a call a minute
    transfers_per_minute: int = 10  # transfers one identity may ask for a minute (31206)


@dataclass(frozen=True)
class ExchangeConfig:
    account_sid: str  # AC + 32 hex: the "account" tokens are issued for
    api_key_sid: str  # SK + 32 hex: tokens' issuer
    api_key_secret: str = field(repr=False)  # HS256 signing secret (the file is 0600)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    ring_timeout: float = 60.0  # seconds before an unanswered call ends with 31480
    # Concurrent calls with media; more are refused (31005). scripts/bench/exchange_capacity.py
    # measured about 39 forwarded (or 11 transcoded) calls per core on an x86 test machine; a
    # Pi 4 core is about three times slower, so 12 keeps a Pi's exchange out of overload.
    max_calls: int = DEFAULT_MAX_CALLS
    heartbeat_interval: float = 5.0  # seconds between "\n" heartbeats (SDK drops after 15 s)
    reconnect_grace: float = 30.0  # seconds a call waits for a leg whose socket vanished
    # ring a client that is in a call too (as Twilio does): its phone holds or refuses; a
    # busy refusal from it is the caller's 31486
    call_waiting: bool = False
    ice_addresses: tuple[str, ...] | None = None  # addresses ICE offers; None = all but lo
    # (and 127.0.0.1 too when host is loopback: the clients are on this machine)
    # ICE candidates taken from a client's SDP (1-100); each is probed, so more are dropped.
    max_remote_candidates: int = MAX_REMOTE_CANDIDATES  # the media's default (rtc/settings.py)
    codec_preferences: tuple[str, ...] = CODECS
    lines: dict[str, str] = field(default_factory=lambda: {"echo": "echo", "tone": "tone"})
    numbers: dict[str, str] = field(default_factory=dict)  # "+15550100" -> identity
    attestation: dict[str, str] = field(default_factory=dict)  # identity -> StirStatus
    events_port: int | None = None  # event gateway (feedback); None: port + 1 (0 if port is 0)
    call_log: str | None = None  # SQLite file of the exchange's call log; None: in memory
    # wss://: the certificate and key served, and the private CA that issued the certificate
    # (handed to phones by add-phone; its own key is beside it, <ca stem>.key). None: ws://.
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca: str | None = None
    phone_keys: str | None = None  # the phones' keys (phones.py); None: beside this file
    allow_plaintext: bool = False  # serve ws:// beyond loopback (tokens in clear on the LAN)
    limits: Limits = field(default_factory=Limits)
    voicemail: VoicemailSettings = field(default_factory=VoicemailSettings)  # [voicemail]
    path: Path | None = None

    def token_kwargs(self) -> dict[str, str]:
        return {"account_sid": self.account_sid, "api_key_sid": self.api_key_sid,
                "api_key_secret": self.api_key_secret}


def _relative(value: str | None, folder: Path) -> str | None:
    """A path from the config file: a relative one is in ``folder``."""
    if value is None or value == ":memory:":
        return value
    return str(folder / value)  # an absolute value stays as it is


def _state_folder(config_path: Path) -> Path:
    """Where the files the exchange writes (its call log) are: the service's state directory
    under systemd (StateDirectory= sets $STATE_DIRECTORY: /etc is read-only to the service),
    else the config file's folder."""
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(state) if state else config_path.parent


def phone_keys_path(config: ExchangeConfig) -> Path:
    """Where the phones' keys are: ``phone_keys``, or <config stem>-phones.toml beside it."""
    if config.phone_keys is not None:
        return Path(config.phone_keys)
    assert config.path is not None
    return config.path.with_name(f"{config.path.stem}-phones.toml")


def load(path: str | Path) -> ExchangeConfig:
    toml = TomlFile(path, text=read_private(path))
    known = {"exchange", "lines", "numbers", "attestation", "limits", "voicemail"}
    for section in toml.data:
        if section not in known:
            raise toml.error(section, None, f"unknown section (known: {', '.join(sorted(known))})")
    ex = "exchange"
    toml.section(ex, required=True)
    toml.unknown_keys(ex, {"account_sid", "api_key_sid", "api_key_secret", "host", "port",
                           "ring_timeout", "max_calls", "heartbeat_interval",
                           "reconnect_grace", "ice_addresses", "codec_preferences",
                           "events_port", "call_log", "max_remote_candidates", "tls_cert",
                           "tls_key", "tls_ca", "phone_keys", "allow_plaintext",
                           "call_waiting"})
    addresses = toml.get(ex, "ice_addresses", list, None, ip_addresses)
    codecs = toml.get(ex, "codec_preferences", list, list(CODECS), codec_list_problem)
    lines = {}
    for number, line in toml.section("lines").items():
        if line not in KNOWN_LINES:
            raise toml.error("lines", number, f"unknown line {line!r} (one of "
                             f"{', '.join(KNOWN_LINES)})")
        lines[str(number)] = line
    numbers = {}
    for number, identity in toml.section("numbers").items():
        if not identities.is_identity(identity):
            raise toml.error("numbers", number, f"must map to an identity ({identities.RULE})")
        numbers[str(number)] = identity
    attestation = {}
    for identity, status in toml.section("attestation").items():
        if not identities.is_identity(identity):
            raise toml.error("attestation", identity, f"is not an identity ({identities.RULE})")
        if not isinstance(status, str) or not identities.is_identity(status):
            raise toml.error("attestation", identity, "must be a StirStatus string")
        attestation[str(identity)] = status
    tls_cert = toml.get(ex, "tls_cert", str, None)
    tls_key = toml.get(ex, "tls_key", str, None)
    if (tls_cert is None) != (tls_key is None):
        raise toml.error(ex, "tls_cert" if tls_cert is None else "tls_key",
                         "missing: tls_cert and tls_key go together")
    heartbeat = toml.get(ex, "heartbeat_interval", (int, float), 5.0,
                         lambda v: None if 0 < v <= 10 else "must be in (0, 10] seconds")
    limits = _limits(toml, float(heartbeat))
    folder = Path(path).parent
    return ExchangeConfig(
        account_sid=toml.get(ex, "account_sid", str, check=sid("AC")),
        api_key_sid=toml.get(ex, "api_key_sid", str, check=sid("SK")),
        api_key_secret=toml.get(ex, "api_key_secret", str,
                                check=lambda v: None if len(v) >= 16
                                else "must be at least 16 characters", secret=True),
        host=toml.get(ex, "host", str, "127.0.0.1"),
        port=toml.get(ex, "port", int, DEFAULT_PORT, port),
        ring_timeout=float(toml.get(ex, "ring_timeout", (int, float), 60.0, positive)),
        max_calls=toml.get(ex, "max_calls", int, DEFAULT_MAX_CALLS, positive),
        heartbeat_interval=float(heartbeat),
        reconnect_grace=float(toml.get(ex, "reconnect_grace", (int, float), 30.0,
                                       lambda v: None if v >= 0 else "must be >= 0")),
        call_waiting=toml.get(ex, "call_waiting", bool, False),
        ice_addresses=tuple(addresses) if addresses is not None else None,
        max_remote_candidates=toml.get(ex, "max_remote_candidates", int, MAX_REMOTE_CANDIDATES,
                                       lambda v: None if 1 <= v <= 100 else "must be 1-100"),
        codec_preferences=tuple(codecs),
        lines=lines or {"echo": "echo", "tone": "tone"},
        numbers=numbers,
        attestation=attestation,
        events_port=toml.get(ex, "events_port", int, None, port),
        call_log=_relative(toml.get(ex, "call_log", str, None), _state_folder(Path(path))),
        tls_cert=_relative(tls_cert, folder),
        tls_key=_relative(tls_key, folder),
        tls_ca=_relative(toml.get(ex, "tls_ca", str, None), folder),
        phone_keys=_relative(toml.get(ex, "phone_keys", str, None), folder),
        allow_plaintext=toml.get(ex, "allow_plaintext", bool, False),
        limits=limits,
        voicemail=voicemail_settings.load(toml, _state_folder(Path(path))),
        path=Path(path),
    )


def _limits(toml: TomlFile, heartbeat_interval: float) -> Limits:
    """The [limits] table, each key checked; defaults from Limits."""
    section, defaults = "limits", Limits()
    counts = ("max_calls_per_identity", "reinvites_per_minute", "max_sessions",
              "max_sockets_per_address", "max_unauthenticated_per_address",
              "max_registrations_per_identity", "send_queue", "max_bad_frames",
              "feedback_per_minute", "messages_per_minute", "transfers_per_minute")
    toml.unknown_keys(section, {*counts, "media_timeout", "max_call_length",
                                "heartbeat_timeout"})
    values: dict[str, Any] = {key: toml.get(section, key, int, getattr(defaults, key), positive)
                              for key in counts}
    values["media_timeout"] = float(toml.get(section, "media_timeout", (int, float),
                                             defaults.media_timeout, positive))
    values["max_call_length"] = float(toml.get(
        section, "max_call_length", (int, float), defaults.max_call_length,
        lambda v: None if v >= 0 else "must be >= 0 (0: none)"))
    values["heartbeat_timeout"] = float(toml.get(
        section, "heartbeat_timeout", (int, float), defaults.heartbeat_timeout,
        lambda v: None if v > heartbeat_interval
        else f"must be longer than exchange.heartbeat_interval ({heartbeat_interval:g} s)"))
    return Limits(**values)


STARTER = """\
# piphone local exchange. Keep this file private (mode 0600): it holds the signing secret.
[exchange]
account_sid = "{account_sid}"
api_key_sid = "{api_key_sid}"
api_key_secret = "{api_key_secret}"
host = "127.0.0.1"          # 0.0.0.0 to serve the LAN (over wss://, with the certificate below)
port = {port}
ring_timeout = 60           # seconds before an unanswered call ends (31480)
max_calls = 12              # concurrent calls with media; more are refused (31005)
heartbeat_interval = 5      # seconds between heartbeats (clients give up after 15 s)
reconnect_grace = 30        # seconds a call waits for a client whose socket vanished
call_waiting = false        # true: a client in a call rings too (its phone holds or refuses)
# ice_addresses = ["192.168.1.20"]   # offered to ICE (default: all but lo; lo if host is)
codec_preferences = ["opus", "pcmu"]
# events_port = {events_port}        # feedback from phones (default: port + 1)
# SQLite call log (`piphone calls --db`): next to this file, or under systemd in the service's
# state directory (/var/lib/piphone-exchange/exchange-calls.db).
call_log = "exchange-calls.db"
# wss://: this certificate and key, issued by a private CA (tls_ca; its key is beside it) for
# {names}
tls_cert = "{tls_cert}"
tls_key = "{tls_key}"
tls_ca = "{tls_ca}"         # the CA phones trust: `piphone exchange add-phone` hands it out
# phone_keys = "{phone_keys}"  # the phones' own keys: `piphone exchange add-phone NAME`
#                           # issues one that signs tokens for NAME only
# allow_plaintext = false   # true: serve ws:// beyond loopback (tokens cross the LAN in clear)

[lines]                     # numbers the exchange answers itself
echo = "echo"               # plays your audio back
tone = "tone"               # plays a 1 kHz tone

[numbers]                   # dial plan: number -> identity
"100" = "alice"
"101" = "bob"

[attestation]               # identity -> StirStatus the callee sees (caller_info)
# alice = "TN-Validation-Passed-A"

[limits]                    # what one client may make the exchange hold
max_calls_per_identity = 4  # concurrent calls of one identity (caller: 31005, callee: busy)
media_timeout = 10          # seconds an answered leg's media has to connect (then 53405)
max_call_length = 14400     # seconds from answer, then the call is hung up (0: no limit)
reinvites_per_minute = 60   # media restarts one leg may ask for (more: 31206)
max_sessions = 200          # signaling sockets open at once, from everyone (more: 31206)
max_sockets_per_address = 32          # sockets open at once from one IP address
max_unauthenticated_per_address = 8   # of those, sockets that have not sent a valid token
max_registrations_per_identity = 10   # devices registered as one identity (a call rings all)
send_queue = 128            # frames waiting for one client; a client that stops reading is cut
max_bad_frames = 20         # malformed or refused frames a session may send a minute
heartbeat_timeout = 15      # seconds without a heartbeat echo before a session is dropped
feedback_per_minute = 20    # call feedback posts one identity may make a minute
messages_per_minute = 120   # call messages one party may send in a call a minute (31206)
transfers_per_minute = 10   # transfers one identity may ask for a minute (31206)
""" + voicemail_settings.STARTER


def write_starter(path: str | Path, port_: int = DEFAULT_PORT, *, names: tuple[str, ...] = (),
                  addresses: tuple[str, ...] = (), owner: str | None = None) -> Path:
    """Write a starter config with a fresh key, and a private CA and a certificate for this
    machine's names and addresses (plus ``names`` and ``addresses``) beside it. Refuses to
    overwrite any of them. ``owner``: the user the files are given to (when run as root)."""
    from . import tls

    path = Path(path)
    files = tls.TlsFiles.beside(path)
    for existing in (path, files.ca, files.ca_key, files.cert, files.key):
        if existing.exists() or existing.is_symlink():
            raise ConfigError(f"{existing}: already exists; not overwriting")
    host_names, host_addresses = tls.local_names(names, addresses)
    text = STARTER.format(
        account_sid="AC" + secrets.token_hex(16),
        api_key_sid="SK" + secrets.token_hex(16),
        api_key_secret=secrets.token_urlsafe(32),
        port=port_,
        events_port=port_ + 1,
        names=", ".join([*host_names, *host_addresses]),
        tls_cert=files.cert.name, tls_key=files.key.name, tls_ca=files.ca.name,
        phone_keys=f"{path.stem}-phones.toml",
    )
    write_private(path, text, replace=False)
    if owner is not None:
        _give(path, owner)
    tls.init(files, host_names, host_addresses, like=path)
    return path


def _give(path: Path, owner: str) -> None:
    import shutil

    try:
        shutil.chown(path, owner, owner)
    except (LookupError, OSError) as exc:
        path.unlink()
        raise ConfigError(f"{path}: cannot give it to {owner!r}: {exc}") from None
