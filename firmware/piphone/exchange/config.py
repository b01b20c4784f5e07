"""The exchange's configuration (exchange.toml) as frozen settings, checked at load."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..tomlconfig import TomlFile, ip_addresses, port, positive, sid

DEFAULT_PORT = 8089
DEFAULT_MAX_CALLS = 12
KNOWN_LINES = ("echo", "tone")
CODECS = ("opus", "pcmu")


@dataclass(frozen=True)
class ExchangeConfig:
    account_sid: str  # AC + 32 hex: the "account" tokens are issued for
    api_key_sid: str  # SK + 32 hex: tokens' issuer
    api_key_secret: str  # HS256 signing secret (keep the file 0600)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    ring_timeout: float = 60.0  # seconds before an unanswered call ends with 31480
    # Concurrent calls with media; more are refused (31005). scripts/bench/exchange_capacity.py
    # measured about 39 forwarded (or 11 transcoded) calls per core on an x86 test machine; a
    # Pi 4 core is about three times slower, so 12 keeps a Pi's exchange out of overload.
    max_calls: int = DEFAULT_MAX_CALLS
    heartbeat_interval: float = 5.0  # seconds between "\n" heartbeats (SDK drops after 15 s)
    reconnect_grace: float = 30.0  # seconds a call waits for a leg whose socket vanished
    ice_addresses: tuple[str, ...] | None = None  # addresses ICE offers; None = all but lo
    codec_preferences: tuple[str, ...] = CODECS
    lines: dict[str, str] = field(default_factory=lambda: {"echo": "echo", "tone": "tone"})
    numbers: dict[str, str] = field(default_factory=dict)  # "+15550100" -> identity
    attestation: dict[str, str] = field(default_factory=dict)  # identity -> StirStatus
    events_port: int | None = None  # event gateway (feedback); None: port + 1 (0 if port is 0)
    call_log: str | None = None  # SQLite file of the exchange's call log; None: in memory
    # [limits]: what clients can make the exchange hold. A refusal is error 31206
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
    path: Path | None = None

    def token_kwargs(self) -> dict[str, str]:
        return {"account_sid": self.account_sid, "api_key_sid": self.api_key_sid,
                "api_key_secret": self.api_key_secret}


def _relative(value: str | None, config_path: Path) -> str | None:
    """A path from the config file, relative to the file's folder."""
    if value is None or value == ":memory:":
        return value
    return str((config_path.parent / value) if not Path(value).is_absolute() else Path(value))


def load(path: str | Path) -> ExchangeConfig:
    toml = TomlFile(path)
    known = {"exchange", "lines", "numbers", "attestation", "limits"}
    for section in toml.data:
        if section not in known:
            raise toml.error(section, None, f"unknown section (known: {', '.join(sorted(known))})")
    ex = "exchange"
    toml.section(ex, required=True)
    toml.unknown_keys(ex, {"account_sid", "api_key_sid", "api_key_secret", "host", "port",
                           "ring_timeout", "max_calls", "heartbeat_interval",
                           "reconnect_grace", "ice_addresses", "codec_preferences",
                           "events_port", "call_log"})
    addresses = toml.get(ex, "ice_addresses", list, None, ip_addresses)
    codecs = toml.get(ex, "codec_preferences", list, list(CODECS),
                      lambda v: None if v and all(c in CODECS for c in v)
                      else f"must list some of {', '.join(CODECS)}")
    lines = {}
    for number, line in toml.section("lines").items():
        if line not in KNOWN_LINES:
            raise toml.error("lines", number, f"unknown line {line!r} (one of "
                             f"{', '.join(KNOWN_LINES)})")
        lines[str(number)] = line
    numbers = {}
    for number, identity in toml.section("numbers").items():
        if not isinstance(identity, str) or not identity:
            raise toml.error("numbers", number, "must map to an identity (a string)")
        numbers[str(number)] = identity
    attestation = {}
    for identity, status in toml.section("attestation").items():
        if not isinstance(status, str):
            raise toml.error("attestation", identity, "must be a StirStatus string")
        attestation[str(identity)] = status
    heartbeat = toml.get(ex, "heartbeat_interval", (int, float), 5.0,
                         lambda v: None if 0 < v <= 10 else "must be in (0, 10] seconds")
    limits = _limits(toml, float(heartbeat))
    return ExchangeConfig(
        account_sid=toml.get(ex, "account_sid", str, check=sid("AC")),
        api_key_sid=toml.get(ex, "api_key_sid", str, check=sid("SK")),
        api_key_secret=toml.get(ex, "api_key_secret", str,
                                check=lambda v: None if len(v) >= 16
                                else "must be at least 16 characters"),
        host=toml.get(ex, "host", str, "127.0.0.1"),
        port=toml.get(ex, "port", int, DEFAULT_PORT, port),
        ring_timeout=float(toml.get(ex, "ring_timeout", (int, float), 60.0, positive)),
        max_calls=toml.get(ex, "max_calls", int, DEFAULT_MAX_CALLS, positive),
        heartbeat_interval=float(heartbeat),
        reconnect_grace=float(toml.get(ex, "reconnect_grace", (int, float), 30.0,
                                       lambda v: None if v >= 0 else "must be >= 0")),
        ice_addresses=tuple(addresses) if addresses is not None else None,
        codec_preferences=tuple(codecs),
        lines=lines or {"echo": "echo", "tone": "tone"},
        numbers=numbers,
        attestation=attestation,
        events_port=toml.get(ex, "events_port", int, None, port),
        call_log=_relative(toml.get(ex, "call_log", str, None), Path(path)),
        **limits,
        path=Path(path),
    )


def _limits(toml: TomlFile, heartbeat_interval: float) -> dict[str, Any]:
    """The [limits] table, each key checked, defaults from ExchangeConfig."""
    section = "limits"
    defaults = {f.name: f.default for f in fields(ExchangeConfig)}
    counts = ("max_sessions", "max_sockets_per_address", "max_unauthenticated_per_address",
              "max_registrations_per_identity", "send_queue", "max_bad_frames",
              "feedback_per_minute")
    toml.unknown_keys(section, {*counts, "heartbeat_timeout"})
    limits: dict[str, Any] = {key: toml.get(section, key, int, defaults[key], positive)
                              for key in counts}
    limits["heartbeat_timeout"] = float(toml.get(
        section, "heartbeat_timeout", (int, float), defaults["heartbeat_timeout"],
        lambda v: None if v > heartbeat_interval
        else f"must be longer than exchange.heartbeat_interval ({heartbeat_interval:g} s)"))
    return limits


STARTER = """\
# piphone local exchange. Keep this file private (mode 0600): it holds the signing secret.
[exchange]
account_sid = "{account_sid}"
api_key_sid = "{api_key_sid}"
api_key_secret = "{api_key_secret}"
host = "127.0.0.1"          # 0.0.0.0 to serve the LAN
port = {port}
ring_timeout = 60           # seconds before an unanswered call ends (31480)
max_calls = 12              # concurrent calls with media; more are refused (31005)
heartbeat_interval = 5      # seconds between heartbeats (clients give up after 15 s)
reconnect_grace = 30        # seconds a call waits for a client whose socket vanished
# ice_addresses = ["192.168.1.20"]   # addresses offered to ICE (default: all but loopback)
codec_preferences = ["opus", "pcmu"]
# events_port = {events_port}        # feedback from phones (default: port + 1)
call_log = "exchange-calls.db"  # SQLite call log (`piphone calls --db`), next to this file

[lines]                     # numbers the exchange answers itself
echo = "echo"               # plays your audio back
tone = "tone"               # plays a 1 kHz tone

[numbers]                   # dial plan: number -> identity
"100" = "alice"
"101" = "bob"

[attestation]               # identity -> StirStatus the callee sees (caller_info)
# alice = "TN-Validation-Passed-A"

[limits]                    # what clients can make the exchange hold; refusals are 31206
max_sessions = 200          # signaling sockets open at once, from everyone
max_sockets_per_address = 32          # sockets open at once from one IP address
max_unauthenticated_per_address = 8   # of those, sockets that have not sent a valid token
max_registrations_per_identity = 10   # devices registered as one identity (a call rings all)
send_queue = 128            # frames waiting for one client; a client that stops reading is cut
max_bad_frames = 20         # malformed or refused frames a session may send a minute
heartbeat_timeout = 15      # seconds without a heartbeat echo before a session is dropped
feedback_per_minute = 20    # call feedback posts one identity may make a minute
"""


def write_starter(path: str | Path, port_: int = DEFAULT_PORT) -> Path:
    """Write a starter config with a fresh key; refuses to overwrite."""
    path = Path(path)
    if path.exists():
        raise ConfigError(f"{path}: already exists; not overwriting")
    text = STARTER.format(
        account_sid="AC" + secrets.token_hex(16),
        api_key_sid="SK" + secrets.token_hex(16),
        api_key_secret=secrets.token_urlsafe(32),
        port=port_,
        events_port=port_ + 1,
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path
