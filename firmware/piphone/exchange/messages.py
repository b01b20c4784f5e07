"""User-defined call messages at the exchange: relayed between the two parties of a call.

Twilio relays a call message between the SDK and the application; piphone's exchange relays it
to the other party of the call, who sees it as ``messageReceived``. The sender's ``callsid``
is looked up among the sender's own legs (calls.py), so a client can only ever speak in a
call it is a party to. Then the message goes on only if:

- the leg is the caller or the callee of an answered call (a device still ringing, or a call
  not answered yet, has no one to hear it) and the far party is connected (not cut off and
  waiting to resume): else 31000;
- its ``messagetype`` is ``user-defined-message``, the one type Twilio knows: else 31210;
- its content is there (else 31100) and at most MAX_CONTENT_BYTES as JSON (Twilio's 10 KB):
  else 31212;
- the leg has sent fewer than ``messages_per_minute`` ([limits]) this minute: else 31206.

The relayed frame is built anew: the far party's CallSid, the protocol's fields only, and a
voice event SID of the exchange's (ids that matter are ours, never a client's). The sender
gets ``ack`` for its voice event SID once the message is on its way, or ``error`` naming it;
Twilio's SDK reports the one as ``messageSent``, the other as an ``error`` of the call. On a
call to a line (the echo test) the message is acknowledged and goes nowhere, as at Twilio a
message no application listens for.
"""

from __future__ import annotations

import json
import logging
import weakref
from typing import Any

from ..voice import protocol
from ..voice.messages import DEFAULT_CONTENT_TYPE, USER_DEFINED, new_voice_event_sid
from .legs import CallLeg, Phase
from .limits import Window

log = logging.getLogger(__name__)

MAX_CONTENT_BYTES = 10 * 1024  # Twilio's limit on a call message's content (its SDKs' docs)


class MessageRelay:
    """Relays ``message`` frames within calls; counts each leg's messages a minute."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        # Each leg's count; a leg that ends takes its window with it.
        self._windows: weakref.WeakKeyDictionary[CallLeg, Window] = (
            weakref.WeakKeyDictionary())

    def relay(self, leg: CallLeg, payload: dict[str, Any]) -> None:
        """A ``message`` frame from ``leg``'s party (already shown to be its own leg)."""
        event = payload.get("voiceeventsid")
        refusal = self._refusal(leg, payload)
        if refusal is not None:
            code, why = refusal
            log.debug("call %s: message refused (%d): %s", leg.call.sid, code, why)
            error = protocol.error_payload(code, why, leg.sid)
            leg.send("error", **error, **({"voiceeventsid": event} if event else {}))
            return
        other = leg.call.other(leg)
        if other is not None:
            other.send("message", callsid=other.sid, content=payload["content"],
                       contenttype=payload.get("contenttype") or DEFAULT_CONTENT_TYPE,
                       messagetype=USER_DEFINED, voiceeventsid=new_voice_event_sid())
        if event:
            leg.send("ack", callsid=leg.sid, acktype="message", voiceeventsid=event)

    def _refusal(self, leg: CallLeg, payload: dict[str, Any]) -> tuple[int, str] | None:
        call = leg.call
        if call.phase is not Phase.ANSWERED or leg not in (call.caller, call.callee):
            return 31000, "the call is not answered: there is no one to give the message to"
        other = call.other(leg)
        if other is not None and other.session is None:
            return 31000, "the other party is reconnecting: the message was not delivered"
        if payload.get("messagetype") != USER_DEFINED:
            return 31210, f"the message type must be {USER_DEFINED!r}"
        if payload["content"] is None:
            return 31100, "the message has no content"
        size = len(json.dumps(payload["content"], ensure_ascii=False).encode())
        if size > MAX_CONTENT_BYTES:
            return 31212, f"message content of {size} bytes is over {MAX_CONTENT_BYTES}"
        window = self._windows.get(leg)
        if window is None:
            window = self._windows[leg] = Window(self.per_minute)
        if not window.add():
            return 31206, f"over {self.per_minute} messages a minute in this call"
        return None
