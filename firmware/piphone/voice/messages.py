"""User-defined call messages: the SDK's ``Call.sendMessage`` and its events, for one call.

As in twilio-voice.js 2.18 (call.ts): ``send`` checks the message (InvalidArgumentError for a
missing ``content`` or a ``message_type`` that is not a non-empty string; InvalidStateError
while the call has no CallSid), names it with a voice event SID of its own (``KX`` + 32 hex)
and sends a ``message`` frame; the server's ``ack`` for that SID emits ``messageSent`` with
the message, its ``error`` for that SID emits ``error`` (TwilioError: 31206 rate, 31210 type,
31212 size, ...). A ``message`` frame from the server emits ``messageReceived``. Frames for
another CallSid are ignored, as the SDK does. The message objects are the SDK's with
snake_case keys: ``content``, ``content_type``, ``message_type``, ``voice_event_sid``.

piphone differs in one place: a closed call refuses with InvalidStateError, where the SDK
would send the frame and, having stopped listening, never report its fate.
"""

from __future__ import annotations

import collections
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InvalidArgumentError, InvalidStateError
from ..logsafe import quoted, text
from . import protocol
from .errors import TwilioError
from .ports import SendFrame

log = logging.getLogger(__name__)

USER_DEFINED = "user-defined-message"  # the one message type Twilio knows so far
DEFAULT_CONTENT_TYPE = "application/json"  # what the SDK's pstream sends when none is given
# Messages awaiting the server's ack. The SDK keeps them unbounded; a server that never acks
# must not make a long call hold more: past this, the oldest is forgotten (logged).
MAX_PENDING = 256


def new_voice_event_sid() -> str:
    """As the SDK's generateVoiceEventSid: KX and 128 random bits in hex."""
    return "KX" + secrets.token_hex(16)


class CallMessages:
    """The messages of one call: what it sent and awaits an ack for, what it receives."""

    def __init__(self, *, send: SendFrame, call_sid: Callable[[], str | None],
                 closed: Callable[[], bool], emit: Callable[..., Any],
                 new_sid: Callable[[], str] = new_voice_event_sid) -> None:
        self._send = send
        self._call_sid = call_sid
        self._closed = closed
        self._emit = emit
        self._new_sid = new_sid
        self._pending: collections.OrderedDict[str, dict[str, Any]] = (
            collections.OrderedDict())

    def send(self, message: Mapping[str, Any]) -> str:
        """Send ``message`` ({content, content_type?, message_type}); its voice event SID."""
        if not isinstance(message, Mapping):
            raise InvalidArgumentError("the message must be a mapping with `content` and "
                                       f"`message_type`, not {type(message).__name__}")
        content = message.get("content")
        content_type = message.get("content_type")
        message_type = message.get("message_type")
        if content is None:
            raise InvalidArgumentError("`content` is empty")
        if not isinstance(message_type, str):
            raise InvalidArgumentError("`message_type` must be a string.")
        if not message_type:
            raise InvalidArgumentError("`message_type` must be a non-empty string.")
        if content_type is not None and not isinstance(content_type, str):
            raise InvalidArgumentError("`content_type` must be a string.")
        try:  # found now, not when the frame is encoded on its way out
            json.dumps(content, allow_nan=False)  # NaN is no JSON the far end can read
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"`content` cannot be sent as JSON: {exc}") from None
        call_sid = self._call_sid()
        if self._closed():
            raise InvalidStateError("Could not send CallMessage; the call is closed")
        if call_sid is None:
            raise InvalidStateError("Could not send CallMessage; Call has no CallSid")
        sid = self._new_sid()
        self._pending[sid] = {"content": content, "content_type": content_type,
                              "message_type": message_type, "voice_event_sid": sid}
        if len(self._pending) > MAX_PENDING:
            forgotten, _ = self._pending.popitem(last=False)
            log.warning("call %s: no ack for message %s; forgotten", call_sid, forgotten)
        self._send("message", {"callsid": call_sid, "content": content,
                               "contenttype": content_type or DEFAULT_CONTENT_TYPE,
                               "messagetype": message_type, "voiceeventsid": sid})
        return sid

    def handle(self, frame: protocol.Frame) -> bool:
        """Take the frames that are about messages (``ack``, ``message``, a message's
        ``error``); False for any other frame, which the call handles."""
        payload = frame.payload
        sid = payload.get("voiceeventsid")
        if frame.type not in ("ack", "message") and not (frame.type == "error" and sid):
            return False
        if self._closed():
            log.debug("%s after the call closed ignored", frame.type)
        elif payload.get("callsid") != self._call_sid():
            log.warning("%s from a different callsid %s ignored", frame.type,
                        quoted(payload.get("callsid"), 64))
        elif frame.type == "message":
            self._emit("messageReceived", {
                "content": payload["content"], "content_type": payload.get("contenttype"),
                "message_type": payload.get("messagetype"), "voice_event_sid": sid})
        elif frame.type == "ack":
            if payload.get("acktype") == "message":
                self._acked(sid)
        else:
            self._failed(sid, payload)
        return True

    def _acked(self, sid: Any) -> None:
        message = self._pending.pop(sid, None) if isinstance(sid, str) else None
        if message is None:
            log.warning("ack for an unknown message %s ignored", quoted(sid, 64))
            return
        self._emit("messageSent", message)

    def _failed(self, sid: Any, payload: dict[str, Any]) -> None:
        if self._pending.pop(sid, None) is None:
            return  # not ours (the SDK ignores it as well)
        error = payload["error"]
        code, said = error.get("code"), error.get("message")
        twilio_error = TwilioError(code if isinstance(code, int) else 31000,
                                   said if isinstance(said, str) else None,
                                   original_error=error)
        log.warning("message %s refused: %s", quoted(sid, 64), text(twilio_error))
        self._emit("error", twilio_error)
