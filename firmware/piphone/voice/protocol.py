"""The signaling protocol's frames, defined once for the client and the exchange.

Every frame is a JSON text message ``{"type": T, "version": "1.6", "payload": {...}}``; a bare
``"\\n"`` is a heartbeat. ``decode`` validates a frame at the edge so that the rest of the code
can trust payload shapes; anything malformed raises ``ProtocolError`` for the caller to log and
drop, and nothing else: not a RecursionError from deep nesting, not a lone surrogate that
breaks whoever encodes the string later. A ProtocolError's message quotes the sender only
escaped and bounded (logsafe). Field tables follow Twilio's SDK (lib/twilio/pstream) and edge.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..errors import PiphoneError
from ..logsafe import quoted
from ..logsafe import text as text_of

VERSION = "1.6"
HEARTBEAT = "\n"
MAX_FRAME_BYTES = 64 * 1024  # larger frames are dropped (an SDP is a few KiB)
MAX_DEPTH = 32  # nesting of arrays and objects in a frame (the SDK's frames nest 4 deep)

# Timers of the protocol, in seconds.
HEARTBEAT_INTERVAL = 5.0  # server -> client heartbeat period (Twilio's SDK gives up after 15 s)
HEARTBEAT_TIMEOUT = 15.0  # client: no frame for this long means the socket is dead
CONNECT_TIMEOUT = 5.0
REGISTER_INTERVAL = 30.0


class ProtocolError(PiphoneError, ValueError):
    """A frame that does not follow the protocol."""


@dataclass(frozen=True)
class Text:
    """A string field: at most ``limit`` characters, all matching ``chars`` if given."""

    limit: int = MAX_FRAME_BYTES
    chars: re.Pattern[str] | None = None
    what: str = "a string"  # what ``chars`` allows, for error messages


@dataclass(frozen=True)
class Shape:
    """An object field whose own fields are checked: (required, optional) as a frame's."""

    required: dict[str, Any]
    optional: dict[str, Any]


# type -> (required fields, optional fields), each name -> accepted Python type(s), a Text or
# a Shape.
_Spec = tuple[dict[str, Any], dict[str, Any]]
_STR = Text()
_OBJ = dict
_PRINTABLE = re.compile(r"[\x21-\x7e]+")
# The exchange's CallSids are CA + 32 hex, Twilio's SDK and piphone name an outgoing call
# TJS + a UUID until it rings; either fits in 64 printable ASCII characters, and nothing else
# (no spaces, no controls, no surrogates) may reach a log, a map key or the call log.
CALLSID = Text(64, _PRINTABLE, "1-64 printable ASCII characters (a CallSid)")
# Empty is allowed: "no access token" is the token check's to say (31204), not a syntax error.
TOKEN = Text(16 * 1024, re.compile(r"[\x21-\x7e]*"), "a JWT (printable ASCII)")
_ID = Text(256, _PRINTABLE, "1-256 printable ASCII characters")
_SHORT = Text(1024)
# A call message's id: the SDK's are KX + 32 hex (voice/messages.py); the exchange echoes a
# client's back to it in the ack, so it must be short and printable.
VOICE_EVENT_SID = Text(64, _PRINTABLE, "1-64 printable ASCII characters (a voice event SID)")

CLIENT_FRAMES: dict[str, _Spec] = {
    "listen": ({"token": TOKEN}, {"browserinfo": _OBJ, "reconnectTimeout": (int, float)}),
    "register": ({"media": Shape({}, {"audio": bool})}, {}),
    "invite": (
        {"callsid": CALLSID, "sdp": _STR},
        {"twilio": Shape({}, {"params": _STR}), "reconnect": _ID, "preflight": bool},
    ),
    "answer": ({"callsid": CALLSID, "sdp": _STR}, {}),
    "reinvite": ({"callsid": CALLSID, "sdp": _STR}, {}),
    "reject": ({"callsid": CALLSID}, {}),
    "hangup": ({"callsid": CALLSID}, {"message": _SHORT}),
    "dtmf": ({"callsid": CALLSID, "dtmf": _SHORT}, {}),
    "message": (
        {"callsid": CALLSID, "content": object},
        {"contenttype": _SHORT, "messagetype": _SHORT, "voiceeventsid": VOICE_EVENT_SID},
    ),
    # piphone's extension, its exchange's only (on Twilio the phone asks the REST API): hand
    # the far party of ``callsid`` on to ``to`` (blind), or to the far party of the requester's
    # other call ``with`` (attended); the exchange hangs the requester up, or sends an error.
    "transfer": ({"callsid": CALLSID}, {"to": _ID, "with": CALLSID}),
    # and: the far parties of the requester's two calls and the requester talk together, in
    # the call of ``callsid`` (the exchange mixes); the requester's call ``with`` is hung up
    "conference": ({"callsid": CALLSID, "with": CALLSID}, {}),
}

SERVER_FRAMES: dict[str, _Spec] = {
    "connected": ({}, {"region": _STR, "edge": _STR, "home": _STR, "token": _OBJ,
                       "eventgw": _STR}),  # eventgw: piphone's exchange names its gateway
    "ready": ({}, {}),
    "offline": ({}, {}),
    "invite": (
        {"callsid": CALLSID, "sdp": _STR},
        {"parameters": _OBJ, "reconnect": _STR},
    ),
    "ringing": ({"callsid": CALLSID}, {"sdp": _STR}),
    "answer": ({"callsid": CALLSID, "sdp": _STR}, {"reconnect": _STR}),
    "cancel": ({"callsid": CALLSID}, {}),
    "hangup": ({}, {"callsid": CALLSID, "error": _OBJ}),
    "dtmf": ({"callsid": CALLSID, "dtmf": _STR}, {}),
    "ack": ({"callsid": CALLSID}, {"acktype": _STR, "voiceeventsid": _STR}),
    "message": (
        {"callsid": CALLSID, "content": object},
        {"contenttype": _STR, "messagetype": _STR, "voiceeventsid": _STR},
    ),
    "error": ({"error": _OBJ}, {"callsid": CALLSID, "voiceeventsid": _STR}),
    "close": ({}, {}),
    # piphone's extension (Twilio has none): the mailbox of the session's identity at the
    # local exchange, sent at register and whenever it changes (exchange/voicemail.py); url:
    # its messages over HTTP, with the access token (voice/voicemail.py)
    "voicemail": ({"messages": int, "unheard": int}, {"url": _SHORT}),
}


@dataclass(frozen=True)
class Frame:
    type: str
    payload: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> str:
        return json.dumps({"type": self.type, "version": VERSION, "payload": self.payload})


def encode(type_: str, **payload: Any) -> str:
    """One frame as the JSON text the wire carries."""
    return Frame(type_, payload).encode()


def decode(text: str | bytes, frames: dict[str, _Spec]) -> Frame | None:
    """Parse and validate one message; ``None`` for a heartbeat.

    ``frames`` is the table of the sending side (CLIENT_FRAMES at the exchange,
    SERVER_FRAMES at the client). Raises ProtocolError naming what is wrong.
    """
    if isinstance(text, bytes):
        raise ProtocolError("binary frames are not part of the protocol")
    if not isinstance(text, str):
        raise ProtocolError(f"a frame is text, not {type(text).__name__}")
    if len(text) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(text)} bytes is over the {MAX_FRAME_BYTES} limit")
    if text.strip() == "":
        return None  # heartbeat
    message = parse_json(text, "frame")
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    type_ = message.get("type")
    if not isinstance(type_, str):
        raise ProtocolError("frame has no string 'type'")
    spec = frames.get(type_)
    if spec is None:
        raise ProtocolError(f"unknown frame type {quoted(type_, 64)}")
    payload = message.get("payload", {})
    if not isinstance(payload, dict):
        raise ProtocolError(f"{type_}: 'payload' is not an object")
    _check_fields(type_, payload, spec)
    return Frame(type_, payload)


def parse_json(text: str, what: str = "body") -> Any:
    """JSON from a peer: nesting at most MAX_DEPTH, every string valid Unicode; anything else
    is a ProtocolError naming ``what`` (never a RecursionError or a UnicodeEncodeError)."""
    _check_depth(text, what)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"{what} is not JSON: {text_of(exc)}") from None
    if _SURROGATE.search(text) is not None:
        _check_unicode(value, what)
    return value


# A lone surrogate comes raw (a str handed to decode) or as a \ud800-\udfff escape; paired
# escapes are one valid character once parsed, hence the closer look when either is seen.
_SURROGATE = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")
_BRACKETS = re.compile(r"[\[\]{}]")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _check_depth(text: str, what: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before parsing: the json module recurses per level
    (RecursionError at about 1,000), and what parses deep breaks whoever encodes it again."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return  # every frame the SDK sends
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                raise ProtocolError(f"{what} nests deeper than {MAX_DEPTH} levels")


def _check_unicode(message: Any, what: str) -> None:
    """Every string must be Unicode scalar values: a lone surrogate cannot be encoded (PyJWT,
    SQLite and the WebSocket to the far end would each raise on it later)."""
    try:
        json.dumps(message, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(f"{what} holds a string that is not valid Unicode "
                            "(a lone surrogate)") from None


def _check_fields(type_: str, payload: dict[str, Any], spec: _Spec) -> None:
    required, optional = spec
    for name, kind in required.items():
        if name not in payload:
            raise ProtocolError(f"{type_}: missing field {name!r}")
        _check(type_, name, payload[name], kind)
    for name, kind in optional.items():
        if name in payload and payload[name] is not None:
            _check(type_, name, payload[name], kind)


def _check(type_: str, name: str, value: Any, kind: Any) -> None:
    if kind is object:
        return
    if isinstance(kind, Text):
        if not isinstance(value, str):
            raise ProtocolError(f"{type_}: field {name!r} must be a string, "
                                f"not {type(value).__name__}")
        if len(value) > kind.limit:
            raise ProtocolError(f"{type_}: field {name!r} is over {kind.limit} characters")
        if kind.chars is not None and kind.chars.fullmatch(value) is None:
            raise ProtocolError(f"{type_}: field {name!r} must be {kind.what}, "
                                f"got {quoted(value, 64)}")
        return
    if isinstance(kind, Shape):
        if not isinstance(value, dict):
            raise ProtocolError(f"{type_}: field {name!r} must be an object, "
                                f"not {type(value).__name__}")
        _check_fields(f"{type_}.{name}", value, (kind.required, kind.optional))
        return
    # bool is an int in Python; a numeric field must not accept it.
    if isinstance(value, bool) and kind is not bool and bool not in _as_tuple(kind):
        raise ProtocolError(f"{type_}: field {name!r} must be {_kind_name(kind)}, not bool")
    if not isinstance(value, kind):
        raise ProtocolError(
            f"{type_}: field {name!r} must be {_kind_name(kind)}, not {type(value).__name__}"
        )


def _as_tuple(kind: Any) -> tuple[Any, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: Any) -> str:
    names = {str: "a string", dict: "an object", bool: "a boolean", int: "a number",
             float: "a number"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in _as_tuple(kind)))


def encode_params(params: dict[str, Any]) -> str:
    """Custom parameters as Twilio sends them: URL-encoded ``k=v&...``."""
    return urlencode({str(k): "" if v is None else str(v) for k, v in params.items()})


def decode_params(text: str | None) -> dict[str, str]:
    return dict(parse_qsl(text or "", keep_blank_values=True))


def error_payload(code: int, message: str, callsid: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"error": {"code": code, "message": message}}
    if callsid is not None:
        payload["callsid"] = callsid
    return payload
