"""The signaling protocol's frames, defined once for the client and the exchange.

Every frame is a JSON text message ``{"type": T, "version": "1.6", "payload": {...}}``; a bare
``"\\n"`` is a heartbeat. ``decode`` validates a frame at the edge so that the rest of the code
can trust payload shapes; anything malformed raises ``ProtocolError`` for the caller to log and
drop. Field tables follow Twilio's SDK (lib/twilio/pstream) and edge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ..errors import PiphoneError

VERSION = "1.6"
HEARTBEAT = "\n"
MAX_FRAME_BYTES = 64 * 1024  # larger frames are dropped (an SDP is a few KiB)

# Timers of the protocol, in seconds.
HEARTBEAT_INTERVAL = 5.0  # server -> client heartbeat period (Twilio's SDK gives up after 15 s)
HEARTBEAT_TIMEOUT = 15.0  # client: no frame for this long means the socket is dead
CONNECT_TIMEOUT = 5.0
REGISTER_INTERVAL = 30.0


class ProtocolError(PiphoneError, ValueError):
    """A frame that does not follow the protocol."""


# type -> (required fields, optional fields), each name -> accepted Python type(s).
_Spec = tuple[dict[str, Any], dict[str, Any]]
_STR = str
_OBJ = dict

CLIENT_FRAMES: dict[str, _Spec] = {
    "listen": ({"token": _STR}, {"browserinfo": _OBJ, "reconnectTimeout": (int, float)}),
    "register": ({"media": _OBJ}, {}),
    "invite": (
        {"callsid": _STR, "sdp": _STR},
        {"twilio": _OBJ, "reconnect": _STR, "preflight": bool},
    ),
    "answer": ({"callsid": _STR, "sdp": _STR}, {}),
    "reinvite": ({"callsid": _STR, "sdp": _STR}, {}),
    "reject": ({"callsid": _STR}, {}),
    "hangup": ({"callsid": _STR}, {"message": _STR}),
    "dtmf": ({"callsid": _STR, "dtmf": _STR}, {}),
    "message": (
        {"callsid": _STR, "content": object},
        {"contenttype": _STR, "messagetype": _STR, "voiceeventsid": _STR},
    ),
}

SERVER_FRAMES: dict[str, _Spec] = {
    "connected": ({}, {"region": _STR, "edge": _STR, "home": _STR, "token": _OBJ,
                       "eventgw": _STR}),  # eventgw: piphone's exchange names its gateway
    "ready": ({}, {}),
    "offline": ({}, {}),
    "invite": (
        {"callsid": _STR, "sdp": _STR},
        {"parameters": _OBJ, "reconnect": _STR},
    ),
    "ringing": ({"callsid": _STR}, {"sdp": _STR}),
    "answer": ({"callsid": _STR, "sdp": _STR}, {"reconnect": _STR}),
    "cancel": ({"callsid": _STR}, {}),
    "hangup": ({}, {"callsid": _STR, "error": _OBJ}),
    "dtmf": ({"callsid": _STR, "dtmf": _STR}, {}),
    "ack": ({"callsid": _STR}, {"acktype": _STR, "voiceeventsid": _STR}),
    "message": (
        {"callsid": _STR, "content": object},
        {"contenttype": _STR, "messagetype": _STR, "voiceeventsid": _STR},
    ),
    "error": ({"error": _OBJ}, {"callsid": _STR, "voiceeventsid": _STR}),
    "close": ({}, {}),
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
    if len(text) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(text)} bytes is over the {MAX_FRAME_BYTES} limit")
    if text.strip() == "":
        return None  # heartbeat
    try:
        message = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    type_ = message.get("type")
    if not isinstance(type_, str):
        raise ProtocolError("frame has no string 'type'")
    spec = frames.get(type_)
    if spec is None:
        raise ProtocolError(f"unknown frame type {type_!r}")
    payload = message.get("payload", {})
    if not isinstance(payload, dict):
        raise ProtocolError(f"{type_}: 'payload' is not an object")
    required, optional = spec
    for name, kind in required.items():
        if name not in payload:
            raise ProtocolError(f"{type_}: missing field {name!r}")
        _check(type_, name, payload[name], kind)
    for name, kind in optional.items():
        if name in payload and payload[name] is not None:
            _check(type_, name, payload[name], kind)
    return Frame(type_, payload)


def _check(type_: str, name: str, value: Any, kind: Any) -> None:
    if kind is object:
        return
    # bool is an int in Python; a numeric field must not accept it.
    if isinstance(value, bool) and kind is not bool and bool not in _as_tuple(kind):
        raise ProtocolError(f"{type_}: field {name!r} must be {_kind_name(kind)}, not bool")
    if not isinstance(value, kind):
        raise ProtocolError(
            f"{type_}: field {name!r} must be {_kind_name(kind)}, not {type(value).__name__}"
        )


def _as_tuple(kind: Any) -> tuple:
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
