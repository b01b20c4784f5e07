"""The appliance's configuration: piphone.toml (0644) and secrets.toml (0600) as frozen settings.

Checked once at load; every error names the file, the key and the line, and the service does
not start. Secrets (an access token or the API key secret) live only in secrets.toml, which
must be a regular file (not a link) owned by the service's user or root and not readable by
group or others (tomlconfig.read_private); their values are left out of every repr and every
error message.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .. import paths
from ..audio import tones
from ..errors import ConfigError
from ..panel.leds import Pattern
from ..panel.pins import DEFAULT_PINS, InputPin, KeypadMatrix, PinMap, PinMapError
from ..tomlconfig import TomlFile, ip_addresses, positive, read_private, sid
from ..voice import identity as identities
from ..voice.edges import EDGES
from ..voice.rtc.settings import CODECS, codec_list_problem
from . import contacts as contacts_mod
from .audio_config import AudioConfig as AudioConfig  # re-exported: [audio] lives there
from .audio_config import load_audio
from .contacts import Contacts
from .display import DisplayPatterns

SECRETS_NAME = "secrets.toml"  # looked for beside piphone.toml unless [account] secrets says
DND_MODES = ("reject", "ignore")
SECRET_KEYS = ("token", "api_key_secret")
# [account] keys of TLS and the network path (issue 13); ice_servers may also be in secrets.toml
NETWORK_KEYS = ("ca_file", "ice_servers", "network_traversal")
# What aiortc parses (rtcicetransport's STUN_REGEX/TURN_REGEX): anything else fails each call.
ICE_URL = re.compile(r"stun:[^?:\s]+(:[0-9]+)?|turns?:[^?:\s]+(:[0-9]+)?(\?transport=(udp|tcp))?")


@dataclass(frozen=True)
class IceServer:
    """A STUN or TURN server, as WebRTC's RTCIceServer (TURN needs username and credential)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)  # from secrets.toml


@dataclass(frozen=True)
class AccountConfig:
    identity: str  # the client identity to register as
    signaling_url: str | None  # ws(s)://... of a local exchange; None = Twilio's edge
    edge: tuple[str, ...] = ("roaming",)  # Twilio edges, tried in order (no signaling_url)
    token: str | None = field(default=None, repr=False)  # a fixed access token (secrets)
    account_sid: str | None = None  # AC...: with api_key_sid + secret, tokens are minted
    api_key_sid: str | None = None  # SK...
    api_key_secret: str | None = field(default=None, repr=False)  # from secrets.toml
    token_ttl: int = 3600  # seconds a minted token lives (60-86400)
    ice_addresses: tuple[str, ...] | None = None  # addresses ICE offers; None = all but lo
    codec_preferences: tuple[str, ...] = CODECS
    # Voice grant of minted tokens: the TwiML App that routes calls the phone places (Twilio's
    # outgoing_application_sid; without it Twilio refuses them), and whether calls may ring it.
    twiml_app_sid: str | None = None  # AP...
    incoming_allow: bool = True
    ca_file: str | None = None  # PEM: the one CA trusted for a wss:// signaling_url
    ice_servers: tuple[IceServer, ...] = ()  # STUN/TURN servers of every call (default none)
    network_traversal: bool = False  # add Twilio NTS TURN credentials (needs the API key)

    def access_token(self) -> str:
        """The configured token, or a fresh one minted with the API key."""
        if self.token is not None:
            return self.token
        from ..voice.tokens import mint

        assert self.account_sid and self.api_key_sid and self.api_key_secret
        return mint(account_sid=self.account_sid, api_key_sid=self.api_key_sid,
                    api_key_secret=self.api_key_secret, identity=self.identity,
                    ttl=self.token_ttl, outgoing_application_sid=self.twiml_app_sid,
                    incoming_allow=self.incoming_allow)

    @property
    def mints_tokens(self) -> bool:
        return self.token is None


@dataclass(frozen=True)
class PhoneConfig:
    dial_timeout: float = 4.0  # seconds after the last digit before dialing (0.5-30)
    auto_answer_rings: int = 0  # answer after this many rings; 0 = off
    call_waiting: bool = False  # a second call rings through (accepting it holds the first)
    dnd: str = "reject"  # what do-not-disturb does with a call: reject | ignore
    dnd_at_start: bool = False  # start with do-not-disturb on
    mute_reminder: float = 15.0  # seconds between beeps while muted; 0 = off
    hold_reminder: float = 20.0  # seconds between beeps on the ringer while a call is held
    # and the handset is down; 0 = off
    call_log: str | None = paths.CALL_LOG  # SQLite call log (`piphone calls`); None = off
    state_file: str | None = paths.STATE_FILE  # volumes and DND across restarts; None = off


@dataclass(frozen=True)
class AlertsConfig:
    ring: tones.ToneSpec = tones.RING  # ringer tone and cadence
    warning_chirp: bool = True  # chirp once when a quality warning is raised
    reconnecting_tone: bool = True  # pips while the call reconnects
    volume: int = 7  # start volume step 0-10 of the call audio
    ringer_volume: int = 7  # start volume step 0-10 of the ringer (7: ring_level as given)

    @property
    def ring_period(self) -> float:
        """Seconds of one ring cycle (on + off): what auto-answer counts."""
        return sum(self.ring.pattern) or 6.0


@dataclass(frozen=True)
class ApplianceConfig:
    account: AccountConfig
    audio: AudioConfig = AudioConfig()
    pins: PinMap = DEFAULT_PINS
    phone: PhoneConfig = PhoneConfig()
    alerts: AlertsConfig = AlertsConfig()
    leds: DisplayPatterns = DisplayPatterns()  # which LED pattern shows each cue
    contacts: Contacts = Contacts()  # names for numbers, speed dial
    path: Path | None = None
    secrets_path: Path | None = None


# --- loading ----------------------------------------------------------------------------------
def load(path: str | Path = paths.CONFIG, secrets_path: str | Path | None = None
         ) -> ApplianceConfig:
    """Read and check piphone.toml (and its secrets.toml); raise ConfigError on any problem."""
    toml = TomlFile(path)
    known = {"account", "audio", "pins", "phone", "alerts", "leds", "contacts"}
    for section in toml.data:
        if section not in known:
            raise toml.error(section, None, f"unknown section (known: {', '.join(sorted(known))})")
    secrets = _load_secrets(toml, secrets_path)
    return ApplianceConfig(
        account=_account(toml, secrets),
        audio=load_audio(toml),
        pins=_pins(toml),
        phone=_phone(toml),
        alerts=_alerts(toml),
        leds=_leds(toml),
        contacts=contacts_mod.load(toml),
        path=toml.path,
        secrets_path=secrets.path if secrets is not None else None,
    )


def _load_secrets(toml: TomlFile, given: str | Path | None) -> TomlFile | None:
    account = toml.section("account")
    if given is not None:
        path = Path(given)
    elif "secrets" in account:
        path = Path(toml.get("account", "secrets", str))
        if not path.is_absolute():
            path = toml.path.parent / path
    else:
        path = toml.path.parent / SECRETS_NAME
        if not path.exists():
            return None  # fine when nothing secret is needed; _account says when it is
    secrets = TomlFile(path, text=read_private(path), secret=True)
    for section in secrets.data:
        if section != "account":
            raise secrets.error(section, None, "unknown section (secrets.toml has [account])")
    secrets.unknown_keys("account", set(SECRET_KEYS) | {"ice_servers"})
    return secrets


def _account(toml: TomlFile, secrets: TomlFile | None) -> AccountConfig:
    sec = "account"
    toml.section(sec, required=True)
    for key in SECRET_KEYS:
        if key in toml.section(sec):
            raise toml.error(sec, key, f"is a secret: put it in {SECRETS_NAME} (mode 0600), "
                             "not in this world-readable file")
    toml.unknown_keys(sec, {"identity", "signaling_url", "edge", "account_sid", "api_key_sid",
                            "token_ttl", "ice_addresses", "codec_preferences", "secrets",
                            "twiml_app_sid", "incoming_allow"}
                      | set(NETWORK_KEYS))
    identity = toml.get(sec, "identity", str, check=_identity)
    url = toml.get(sec, "signaling_url", str, None,
                   lambda v: None if re.fullmatch(r"wss?://[^\s/]+(/\S*)?", v)
                   else "must be a ws:// or wss:// URL")
    edge = toml.get(sec, "edge", (str, list), "roaming", _edges)
    account_sid = toml.get(sec, "account_sid", str, None, sid("AC"))
    api_key_sid = toml.get(sec, "api_key_sid", str, None, sid("SK"))
    token = secret = None
    if secrets is not None:
        token = secrets.get(sec, "token", str, None,
                            lambda v: None if v.count(".") == 2 else "must be a JWT (a.b.c)")
        secret = secrets.get(sec, "api_key_secret", str, None,
                             lambda v: None if len(v) >= 16 else "must be at least 16 characters")
    if token is None:
        # No fixed token: mint tokens, which takes the SIDs here and the secret there.
        for key, value in (("account_sid", account_sid), ("api_key_sid", api_key_sid)):
            if value is None:
                raise toml.error(sec, None, f"missing key {key!r} (needed to mint tokens when "
                                 f"{SECRETS_NAME} has no token)")
        if secret is None:
            where = secrets.path if secrets is not None else toml.path.parent / SECRETS_NAME
            raise ConfigError(f"{where}: account.api_key_secret: missing (needed to mint "
                              "tokens for account.api_key_sid)")
    twiml_app_sid = toml.get(sec, "twiml_app_sid", str, None, sid("AP"))
    incoming_allow = toml.get(sec, "incoming_allow", bool, True)
    if token is not None:  # a fixed token carries its own grant: these would do nothing
        for key in ("twiml_app_sid", "incoming_allow"):
            if key in toml.section(sec):
                raise toml.error(sec, key, f"applies to minted tokens only, and {SECRETS_NAME} "
                                 "has a fixed token (its grant decides)")
    addresses = toml.get(sec, "ice_addresses", list, None, ip_addresses)
    codecs = toml.get(sec, "codec_preferences", list, list(CODECS), codec_list_problem)
    ca_file = _ca_file(toml, url)
    ice_servers = _ice_servers(toml, secrets=False)
    if secrets is not None:
        ice_servers += _ice_servers(secrets, secrets=True)
    traversal = toml.get(sec, "network_traversal", bool, False)
    if traversal and token is not None:
        raise toml.error(sec, "network_traversal", "needs the API key (account_sid, "
                         f"api_key_sid and {SECRETS_NAME}'s api_key_secret), not a fixed token")
    return AccountConfig(
        identity=identity, signaling_url=url, edge=(edge,) if isinstance(edge, str) else
        tuple(edge), token=token,
        account_sid=account_sid, api_key_sid=api_key_sid, api_key_secret=secret,
        token_ttl=toml.get(sec, "token_ttl", int, 3600,
                           lambda v: None if 60 <= v <= 86400 else "must be 60-86400 seconds"),
        ice_addresses=tuple(addresses) if addresses is not None else None,
        codec_preferences=tuple(codecs),
        twiml_app_sid=twiml_app_sid, incoming_allow=incoming_allow,
        ca_file=ca_file, ice_servers=ice_servers, network_traversal=traversal,
    )


def _edges(value: str | list[str]) -> str | None:
    names = [value] if isinstance(value, str) else value
    if not names:
        return "must name at least one edge"
    for name in names:
        if name not in EDGES:
            return f"{name!r} is not an edge (one of {', '.join(EDGES)})"
    if len(set(names)) != len(names):
        return "names an edge twice"
    return None


def _ca_file(toml: TomlFile, url: str | None) -> str | None:
    """[account] ca_file: a PEM CA (relative to this file) for a wss:// signaling_url."""
    value = toml.get("account", "ca_file", str, None, _nonempty)
    if value is None:
        return None
    if url is None or not url.startswith("wss://"):
        raise toml.error("account", "ca_file", "is for a wss:// signaling_url (a local exchange "
                         "with its own CA); Twilio's edge is checked against the system's "
                         "trust store")
    path = Path(value) if Path(value).is_absolute() else toml.path.parent / value
    try:
        ssl.create_default_context(cafile=str(path))
    except FileNotFoundError:
        raise toml.error("account", "ca_file", f"{path}: no such file") from None
    except (OSError, ssl.SSLError) as exc:
        raise toml.error("account", "ca_file", f"{path}: not a PEM certificate "
                         f"({getattr(exc, 'strerror', None) or exc})") from None
    return str(path)


def _ice_servers(toml: TomlFile, *, secrets: bool) -> tuple[IceServer, ...]:
    """[account] ice_servers = [{urls = "stun:...", username = "...", credential = "..."}]: a
    TURN server's credential only in secrets.toml (0600)."""
    servers = toml.get("account", "ice_servers", list, [])
    found = []
    for number, entry in enumerate(servers, 1):
        def bad(message: str, n: int = number) -> ConfigError:
            return toml.error("account", "ice_servers", f"server {n}: {message}")

        if not isinstance(entry, dict):
            raise bad("must be a table like {urls = \"stun:host:3478\"}")
        extra = set(entry) - {"urls", "username", "credential"}
        if extra:
            raise bad(f"unknown key {sorted(extra)[0]!r} (known: urls, username, credential)")
        urls = entry.get("urls")
        urls = [urls] if isinstance(urls, str) else urls
        if not urls or not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise bad("urls must be a stun:/turn: URL or a list of them")
        for url in urls:
            if not ICE_URL.fullmatch(url):
                raise bad(f"{url!r} is not a stun:, turn: or turns: URL")
        for key in ("username", "credential"):
            if key in entry and not isinstance(entry[key], str):
                raise bad(f"{key} must be a string")
        if "credential" in entry and not secrets:
            raise bad(f"a credential is a secret: put this server in {SECRETS_NAME} "
                      "(mode 0600), not in this world-readable file")
        turn = any(u.startswith("turn") for u in urls)
        if turn and not ("username" in entry and "credential" in entry):
            raise bad("a TURN server needs username and credential"
                      + ("" if secrets else f" (in {SECRETS_NAME})"))
        found.append(IceServer(tuple(urls), entry.get("username"), entry.get("credential")))
    return tuple(found)


def _phone(toml: TomlFile) -> PhoneConfig:
    sec = "phone"
    toml.unknown_keys(sec, {"dial_timeout", "auto_answer_rings", "call_waiting", "dnd",
                            "dnd_at_start", "mute_reminder", "hold_reminder", "call_log",
                            "state_file"})
    call_log = toml.get(sec, "call_log", str, paths.CALL_LOG)
    state_file = toml.get(sec, "state_file", str, paths.STATE_FILE)
    return PhoneConfig(
        dial_timeout=float(toml.get(sec, "dial_timeout", (int, float), 4.0,
                                    lambda v: None if 0.5 <= v <= 30
                                    else "must be 0.5-30 seconds")),
        auto_answer_rings=toml.get(sec, "auto_answer_rings", int, 0,
                                   lambda v: None if 0 <= v <= 20
                                   else "must be 0 (off) to 20 rings"),
        call_waiting=toml.get(sec, "call_waiting", bool, False),
        dnd=toml.get(sec, "dnd", str, "reject",
                     lambda v: None if v in DND_MODES else f"must be {' or '.join(DND_MODES)}"),
        dnd_at_start=toml.get(sec, "dnd_at_start", bool, False),
        mute_reminder=float(toml.get(sec, "mute_reminder", (int, float), 15.0,
                                     lambda v: None if v == 0 or 1 <= v <= 600
                                     else "must be 0 (off) or 1-600 seconds")),
        hold_reminder=float(toml.get(sec, "hold_reminder", (int, float), 20.0,
                                     lambda v: None if v == 0 or 1 <= v <= 600
                                     else "must be 0 (off) or 1-600 seconds")),
        call_log=call_log or None,  # "" turns the log off
        state_file=state_file or None,  # "" keeps nothing across restarts
    )


def _alerts(toml: TomlFile) -> AlertsConfig:
    sec = "alerts"
    toml.unknown_keys(sec, {"ring_freqs", "ring_pattern", "ring_level", "warning_chirp",
                            "reconnecting_tone", "volume", "ringer_volume"})
    freqs = toml.get(sec, "ring_freqs", list, [440, 480], _numbers("Hz"))
    pattern = toml.get(sec, "ring_pattern", list, [2.0, 4.0], _numbers("seconds"))
    level = toml.get(sec, "ring_level", (int, float), -12.0)
    try:
        ring = tones.ring_spec(freqs, pattern, float(level))
    except ValueError as exc:
        key = ("ring_freqs" if "frequency" in str(exc) else "ring_level" if "level" in str(exc)
               else "ring_pattern")
        raise toml.error(sec, key, str(exc)) from None
    return AlertsConfig(
        ring=ring,
        warning_chirp=toml.get(sec, "warning_chirp", bool, True),
        reconnecting_tone=toml.get(sec, "reconnecting_tone", bool, True),
        volume=toml.get(sec, "volume", int, 7,
                        lambda v: None if 0 <= v <= 10 else "must be a step 0-10"),
        ringer_volume=toml.get(sec, "ringer_volume", int, 7,
                               lambda v: None if 0 <= v <= 10 else "must be a step 0-10"),
    )


def _leds(toml: TomlFile) -> DisplayPatterns:
    """[leds]: cue = pattern, e.g. ``ringing = "blink_slow"`` (display.DisplayPatterns)."""
    cues = [f.name for f in fields(DisplayPatterns)]
    toml.unknown_keys("leds", set(cues))
    chosen = {}
    for cue in cues:
        value = toml.get("leds", cue, str, None)
        if value is not None:
            if value not in set(Pattern):
                raise toml.error("leds", cue, f"unknown pattern {value!r} (known: "
                                 f"{', '.join(Pattern)})")
            chosen[cue] = Pattern(value)
    return DisplayPatterns(**chosen)


def _pins(toml: TomlFile) -> PinMap:
    """[pins] (pwm_leds), [pins.inputs], [pins.leds] and [pins.keypad]; each table left out
    keeps the documented default (panel/pins.py's DEFAULT_PINS; no keypad). The pins
    themselves are checked by PinMap (unknown pin, not a GPIO, used twice), its error turned
    into one naming this file, the key and the line."""
    if "pins" not in toml.data:
        return DEFAULT_PINS
    pins = toml.section("pins")
    toml.unknown_keys("pins", {"inputs", "leds", "pwm_leds", "keypad"})
    pwm = toml.get("pins", "pwm_leds", bool, True)
    inputs: Mapping[str, InputPin] = DEFAULT_PINS.inputs
    if "inputs" in pins:
        inputs = {}
        for name, value in _subtable(toml, pins, "inputs").items():
            inputs[name] = _input(toml, name, value)
        if "hook" not in inputs:
            raise toml.error("pins.inputs", None, "missing key 'hook' (the hook switch)")
    leds: Mapping[str, Any] = DEFAULT_PINS.leds
    if "leds" in pins:
        leds = {name: _pin_value(toml, "pins.leds", name, value)
                for name, value in _subtable(toml, pins, "leds").items()}
    keypad = _keypad(toml, pins) if "keypad" in pins else None
    try:
        return PinMap(inputs=inputs, leds=leds, pwm_leds=pwm, keypad=keypad)
    except PinMapError as exc:
        section, _, key = exc.key.rpartition(".")
        message = str(exc).removeprefix(f"{exc.key}: ")
        if section.startswith("keypad"):  # "keypad.rows" -> [pins.keypad] rows
            section, key = "keypad", exc.key.split(".")[1]
        raise toml.error(f"pins.{section}", key, message) from None


def _subtable(toml: TomlFile, pins: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = pins.get(name, {})
    if not isinstance(value, dict):
        raise toml.error("pins", name, f"must be a [pins.{name}] table")
    return value


def _input(toml: TomlFile, name: str, value: Any) -> InputPin:
    if not isinstance(value, dict):
        return InputPin(_pin_value(toml, "pins.inputs", name, value))
    extra = set(value) - {"pin", "pull_up", "active_low"}
    if extra:
        raise toml.error("pins.inputs", name, f"unknown key {sorted(extra)[0]!r} "
                         "(known: pin, pull_up, active_low)")
    if "pin" not in value:
        raise toml.error("pins.inputs", name, "missing key 'pin'")
    for flag in ("pull_up", "active_low"):
        if flag in value and not isinstance(value[flag], bool):
            raise toml.error("pins.inputs", name, f"{flag} must be true or false, not "
                             f"{value[flag]!r}")
    return InputPin(_pin_value(toml, "pins.inputs", name, value["pin"]),
                    pull_up=value.get("pull_up", True), active_low=value.get("active_low", True))


def _keypad(toml: TomlFile, pins: Mapping[str, Any]) -> KeypadMatrix:
    """[pins.keypad] rows = [...], cols = [...], layout = ["123", ...] (a 4x3 by default)."""
    table = _subtable(toml, pins, "keypad")
    extra = set(table) - {"rows", "cols", "layout"}
    if extra:
        raise toml.error("pins.keypad", sorted(extra)[0], "unknown key (known: rows, cols, "
                         "layout)")
    lists: dict[str, list[Any]] = {}
    for key in ("rows", "cols", "layout"):
        if key not in table:
            if key == "layout":
                continue
            raise toml.error("pins.keypad", None, f"missing key {key!r}")
        if not isinstance(table[key], list) or not table[key]:
            raise toml.error("pins.keypad", key, "must be a list")
        lists[key] = table[key]
    if not all(isinstance(line, str) for line in lists.get("layout", [])):
        raise toml.error("pins.keypad", "layout", "must list strings of keys, e.g. \"123\"")
    rows = tuple(_pin_value(toml, "pins.keypad", "rows", v) for v in lists["rows"])
    cols = tuple(_pin_value(toml, "pins.keypad", "cols", v) for v in lists["cols"])
    try:
        if "layout" in lists:
            return KeypadMatrix(rows, cols, tuple(lists["layout"]))
        return KeypadMatrix(rows, cols)
    except PinMapError as exc:
        raise toml.error("pins.keypad", exc.key.split(".")[-1],
                         str(exc).removeprefix(f"{exc.key}: ")) from None


def _pin_value(toml: TomlFile, section: str, name: str, value: Any) -> str | int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise toml.error(section, name, f"pin must be a BCM number or a name like 'GPIO17', "
                         f"not {type(value).__name__} ({value!r})")
    return value


def _nonempty(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _identity(value: str) -> str | None:
    return None if identities.is_identity(value) else f"must be {identities.RULE}"


def _numbers(unit: str) -> Callable[[list[Any]], str | None]:
    def check(value: list[Any]) -> str | None:
        if not value or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                for v in value):
            return f"must be a list of numbers ({unit})"
        return positive(min(value))

    return check

