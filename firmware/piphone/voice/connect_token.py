"""Connect tokens: the SDK's ``Call.connectToken`` and ``Device.connect({connectToken})``.

A connect token lets another Device (or the same phone started again) take over a call that is
up: the SDK (twilio-voice.js 2.18, lib/twilio/call.ts ``get connectToken``, device.ts
``connect``) makes it as ``btoa(encodeURIComponent(JSON.stringify({customParameters,
parameters, signalingReconnectToken})))``, and a Device given one places no new call: it sends
a signaling resume (``invite`` with ``reconnect``) for ``parameters.CallSid`` with a fresh
offer, as an outgoing call. The format is the SDK's byte for byte, so a token made by the
browser SDK works here and ours there. (The SDK's token has no ``direction``: a call resumed
from a token is always outgoing, in the SDK as here.)

The token holds the signaling reconnect token, which lets its holder's identity take over the
call: it is a secret (never logged, never in a repr). The server lets only the call's own
identity use it (exchange/restarts.py).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from ..errors import InvalidArgumentError

# A token is a few hundred characters; anything this long is not one (and is not decoded).
MAX_LENGTH = 16 * 1024
# What JavaScript's encodeURIComponent leaves as it is (RFC 3986 unreserved + "!*'()").
_URI_COMPONENT_SAFE = "-_.!~*'()"


@dataclass(frozen=True)
class ConnectToken:
    """A decoded connect token: what a Device needs to resume the call."""

    parameters: dict[str, str]  # the call's parameters; CallSid names the call
    custom_parameters: dict[str, str]
    signaling_reconnect_token: str = field(repr=False)  # a secret: never in a repr

    @property
    def call_sid(self) -> str:
        return self.parameters["CallSid"]


def encode(parameters: dict[str, str], custom_parameters: dict[str, str],
           signaling_reconnect_token: str | None) -> str | None:
    """The SDK's connect token of a call; None until the call has a CallSid and a reconnect
    token (as the SDK's getter: an incoming call once it rings, an outgoing one once
    answered)."""
    if not signaling_reconnect_token or not parameters.get("CallSid"):
        return None
    text = json.dumps({"customParameters": dict(custom_parameters),
                       "parameters": dict(parameters),
                       "signalingReconnectToken": signaling_reconnect_token},
                      separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(quote(text, safe=_URI_COMPONENT_SAFE).encode("ascii")).decode()


def decode(token: object) -> ConnectToken:
    """A connect token, checked as the SDK checks it: InvalidArgumentError "Cannot parse
    connectToken" if it is not base64 of URI-encoded JSON, "Invalid connectToken" if it has no
    ``parameters.CallSid`` or ``signalingReconnectToken``. Values must be strings (the SDK's
    are): a token that lies about its shape is refused here, not deep in a call. The error
    never quotes the token (it holds a secret)."""
    if not isinstance(token, str) or len(token) > MAX_LENGTH:
        raise InvalidArgumentError("Cannot parse connectToken")
    try:
        raw = base64.b64decode(token.encode("ascii"), validate=True).decode("ascii")
        parts = json.loads(unquote(raw, errors="strict"))
    except (UnicodeError, binascii.Error, ValueError):
        raise InvalidArgumentError("Cannot parse connectToken") from None
    if not isinstance(parts, dict):
        raise InvalidArgumentError("Cannot parse connectToken")
    parameters = _strings(parts.get("parameters"))
    custom = _strings(parts.get("customParameters") or {})
    reconnect = parts.get("signalingReconnectToken")
    if (parameters is None or custom is None or not parameters.get("CallSid")
            or not isinstance(reconnect, str) or not reconnect):
        raise InvalidArgumentError("Invalid connectToken")
    return ConnectToken(parameters, custom, reconnect)


def _strings(value: Any) -> dict[str, str] | None:
    """A flat object of strings, or None."""
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return None
    return dict(value)


def invite(callsid: str | None, sdp: str, params: str, reconnect: str | None) -> dict[str, Any]:
    """The ``invite`` an outgoing call sends: a new call (``twilio.params``), or, with a
    reconnect token, the SDK's resume of an existing one (pstream ``reconnect``)."""
    if reconnect is not None:
        return {"callsid": callsid, "sdp": sdp, "reconnect": reconnect, "preflight": False,
                "twilio": {}}
    return {"callsid": callsid, "sdp": sdp, "twilio": {"params": params} if params else {}}
