"""Call feedback as Twilio's SDK sends it: an Insights event posted to the event gateway.

The SDK's EventPublisher (voice-sdk 2.x, eventpublisher.ts) POSTs JSON to
``https://<eventgw>/v4/EndpointEvents`` with ``Content-Type: application/json`` and
``X-Twilio-Token: <access token>``; every event carries ``publisher_metadata`` with the
Device's ``app_name`` and ``app_version`` (null when not set), and its payload ``dscp``; a
feedback event is group ``feedback``, name ``received``
(``quality_score``, ``issue_name``) or ``received-none`` (declined), level INFO, with the
call's identifiers in the payload. The gateway host is ``eventgw.<home>.twilio.com`` for the
home region the signaling server names (``eventgw.twilio.com`` before that).

piphone's local exchange serves the same endpoint (exchange/events.py) and names its URL in
its ``connected`` frame, so a Device posts there with no setting; ``Device(event_gateway=...)``
overrides both. Posting never affects the call: a bounded timeout, and any failure is logged
and reported as ``False``.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
import logging
import ssl
from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgumentError
from . import tls

log = logging.getLogger(__name__)

PUBLISHER = "piphone"
SDK_VERSION = "piphone-0.1"
ENDPOINT = "/v4/EndpointEvents"
POST_TIMEOUT = 5.0  # seconds for the whole request


FEEDBACK_ISSUES = (
    "dropped-call", "audio-latency", "one-way-audio", "choppy-audio", "noisy-call", "echo",
)


def check_feedback(score: object, issue: object) -> None:
    """The SDK's checks of ``postFeedback(score, issue)``: InvalidArgumentError if either is
    not one it takes (score 1-5 or None, issue one of FEEDBACK_ISSUES or None)."""
    if score is not None and (isinstance(score, bool) or score not in (1, 2, 3, 4, 5)):
        raise InvalidArgumentError(f"feedback score must be 1-5 or None, got {score!r}")
    if issue is not None and issue not in FEEDBACK_ISSUES:
        raise InvalidArgumentError(
            f"feedback issue must be one of {', '.join(FEEDBACK_ISSUES)}, got {issue!r}")


def twilio_event_gateway(home: str | None = None) -> str:
    host = f"eventgw.{home}.twilio.com" if home else "eventgw.twilio.com"
    return f"https://{host}{ENDPOINT}"


def feedback_event(call: Any, score: int | None, issue: str | None, *,
                   region: str | None = None, dscp: bool = True) -> dict[str, Any]:
    """The Insights event of ``call.post_feedback(score, issue)`` (score None: declined)."""
    payload: dict[str, Any] = {"platform": PUBLISHER, "sdk_version": SDK_VERSION,
                               "direction": call.direction.value, "dscp": dscp}
    callsid = call.call_sid
    if callsid and not callsid.startswith("TJ"):
        payload["call_sid"] = callsid
    if call.outbound_connection_id:
        payload["temp_call_sid"] = call.outbound_connection_id
    if call.codec:
        payload["audio_codec"] = call.codec
    if region:
        payload["region"] = region
    if score is not None:
        payload.update(quality_score=score, issue_name=issue)
    return {
        "group": "feedback",
        "level": "INFO",
        "name": "received" if score is not None else "received-none",
        "payload": payload,
        "payload_type": "application/json",
        "private": False,
        "publisher": PUBLISHER,
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
    }


class InsightsPublisher:
    """Posts events to an event gateway with the Device's current token."""

    def __init__(self, url: Callable[[], str | None], token: Callable[[], str], *,
                 timeout: float = POST_TIMEOUT,
                 ssl_context: Callable[[], ssl.SSLContext | None] = lambda: None,
                 metadata: Callable[[], dict[str, str | None]] | None = None) -> None:
        self._url = url
        self._token = token
        self._metadata = metadata  # the SDK's publisher_metadata (app_name, app_version)
        self.timeout = timeout
        self._ssl = ssl_context  # the context in use (the Device's signaling one), or None

    async def post(self, event: dict[str, Any]) -> bool:
        """True if the gateway took the event (2xx); False, logged, on anything else."""
        url = self._url()
        if not url:
            log.warning("no event gateway known: %s/%s not posted", event.get("group"),
                        event.get("name"))
            return False
        # Imported here, in a thread (an import of this size would stall the loop's audio):
        # aiohttp is ~9 MB of a phone's memory, and most calls post no feedback.
        aiohttp = await asyncio.to_thread(importlib.import_module, "aiohttp")

        if self._metadata is not None:  # as the SDK's EventPublisher, on every event
            event = {**event, "publisher_metadata": self._metadata()}
        headers = {"Content-Type": "application/json", "X-Twilio-Token": self._token()}
        try:
            # aiohttp's ssl=True would be its own default; ours is tls.py's (False: http).
            context: ssl.SSLContext | bool | None = self._ssl()
            if context is None and tls.is_secure(url):
                context = await asyncio.to_thread(tls.client_context)
            context = context if tls.is_secure(url) else False
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
                    url, json=event, headers=headers, ssl=context) as response:
                if 200 <= response.status < 300:
                    log.info("posted %s/%s to %s", event["group"], event["name"], url)
                    return True
                log.warning("event gateway %s refused %s/%s: HTTP %d", url, event["group"],
                            event["name"], response.status)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            log.warning("could not post %s/%s to %s: %s", event["group"], event["name"], url,
                        exc or type(exc).__name__)
        return False
