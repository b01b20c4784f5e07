"""The exchange's event gateway: Twilio's Insights endpoint ``POST /v4/EndpointEvents``.

Clients post call feedback here exactly as Twilio's SDK posts it to eventgw.twilio.com
(voice/insights.py): JSON with the access token in ``X-Twilio-Token``. Twilio's signaling
protocol has no feedback frame (the SDK never sends feedback over the signaling socket), so
the exchange takes it over HTTP like Twilio, and a client needs one code path for both. The
WebSocket server (websockets) answers GET only, hence a small aiohttp server on a port of its
own (``events_port``, named to clients in the ``connected`` frame). Feedback is filed in the
exchange's call log under any CallSid the caller or callee knows the call by; other events
are accepted and dropped.

Any token holder can post, so: only a party of a call (its caller, or the identity it rang)
may file feedback on it, once; feedback posts are limited per identity a minute
(``feedback_per_minute``, 429); a body is at most MAX_BODY bytes (413) of JSON nested at most
protocol.MAX_DEPTH deep (400). A call that is not the poster's is "no call" (404), as one that
does not exist: the gateway tells no one which CallSids exist.
"""

from __future__ import annotations

import collections
import logging
import ssl
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..calllog import CallLog, CallRecord
from ..logsafe import quoted, text
from ..voice import protocol
from ..voice.errors import TwilioError
from ..voice.insights import ENDPOINT, FEEDBACK_ISSUES
from .auth import Grant
from .limits import Window

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024  # bytes: an event is a few hundred
MAX_POSTERS = 1024  # identities whose feedback rate is remembered (least recent forgotten)


class EventGateway:
    """``verify``: an access token's grant, or TwilioError; ``call_log``: where feedback is
    filed (the exchange's, records.py); ``feedback_per_minute``: the limit per identity."""

    def __init__(self, verify: Callable[[object], Grant], call_log: CallLog,
                 feedback_per_minute: int) -> None:
        self._verify = verify
        self._call_log = call_log
        self._feedback_per_minute = feedback_per_minute
        self.events = 0  # events accepted (all groups)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.port: int | None = None
        self.tls = False
        self._posters: collections.OrderedDict[str, Window] = collections.OrderedDict()
        self.more_routes: list[Callable[[web.Application], None]] = []  # voicemail's

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(ENDPOINT, self._post)
        for add in self.more_routes:
            add(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await self._site.start()
        self.port = self._runner.addresses[0][1]  # the bound port (port 0: the system's)
        self.tls = ssl_context is not None
        log.info("event gateway on port %d", self.port)

    def url_for(self, host: str, path: str = ENDPOINT) -> str | None:
        """The endpoint's URL (or ``path``'s) for a client that reached us at ``host``."""
        if self.port is None:
            return None
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _post(self, request: web.Request) -> web.Response:
        try:
            return await self._event(request)
        except web.HTTPException:
            raise  # aiohttp's own answers (413: body too large)
        except Exception:  # a bug must answer this post, not leave a traceback in its stead
            log.exception("event gateway: error handling a post")
            return _error(500, 31000, "internal error")

    async def _event(self, request: web.Request) -> web.Response:
        try:
            grant = self._verify(request.headers.get("X-Twilio-Token"))
        except TwilioError as exc:
            return _error(401, exc.code, text(exc.message))
        try:
            event = protocol.parse_json(await request.text(), "the body")
        except (protocol.ProtocolError, UnicodeDecodeError) as exc:
            return _error(400, 31100, text(exc))
        if not isinstance(event, dict) or not isinstance(event.get("group"), str) or \
                not isinstance(event.get("name"), str):
            return _error(400, 31100, "an event needs a group and a name")
        self.events += 1
        if event["group"] != "feedback":
            return web.json_response({"accepted": True})
        if not self._within_rate(grant.identity):
            return _error(429, 31206, f"over {self._feedback_per_minute} feedback posts a "
                                      "minute")
        payload = event.get("payload")
        if not isinstance(payload, dict):
            payload = {}
        score, issue = (None, None)
        if event["name"] == "received":
            score, issue = payload.get("quality_score"), payload.get("issue_name")
            if isinstance(score, bool) or score not in (1, 2, 3, 4, 5):
                return _error(400, 31100, f"quality_score must be 1-5, got {quoted(score)}")
            if issue is not None and issue not in FEEDBACK_ISSUES:
                return _error(400, 31100, f"issue_name must be one of "
                                          f"{', '.join(FEEDBACK_ISSUES)}, got {quoted(issue)}")
        elif event["name"] != "received-none":
            return _error(400, 31100, f"unknown feedback event {quoted(event['name'], 64)}")
        sids = [s for s in (payload.get("call_sid"), payload.get("temp_call_sid"))
                if isinstance(s, str) and s]
        if not all(_is_callsid(s) for s in sids):
            return _error(400, 31100, f"call_sid must be {protocol.CALLSID.what}")
        call_log = self._call_log
        call_id = call_log.find(*sids)
        record = call_log.get(call_id) if call_id is not None else None
        if record is None or grant.identity not in _parties(record):
            return _error(404, 31000, f"no call {' / '.join(sids) or '(none named)'} of yours")
        if any(f["party"] == grant.identity for f in record.feedback):
            return _error(409, 31000, "you gave feedback on this call already")
        call_log.add_feedback(sids, score, issue, party=grant.identity)
        log.info("feedback from %s on %s: %s %s", text(grant.identity), sids[0], score,
                 issue or "")
        return web.json_response({"accepted": True, "call": call_id})

    def _within_rate(self, identity: str) -> bool:
        window = self._posters.pop(identity, None) or \
            Window(self._feedback_per_minute)
        self._posters[identity] = window  # the most recent last
        while len(self._posters) > MAX_POSTERS:
            self._posters.popitem(last=False)
        return window.add()


def _is_callsid(text: str) -> bool:
    """What the signaling protocol takes as a CallSid (protocol.CALLSID)."""
    spec = protocol.CALLSID
    return len(text) <= spec.limit and (spec.chars is None or
                                        spec.chars.fullmatch(text) is not None)


def _parties(record: CallRecord) -> set[str]:
    """Who may give feedback on a call: its caller, and the identity it rang (a line or a
    number that leads nowhere has no callee)."""
    parties = {record.identity} if record.identity else set()
    if record.peer and record.peer.startswith("client:"):
        parties.add(record.peer[len("client:"):])
    return parties


def _error(status: int, code: int, message: str) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    return web.json_response(body, status=status)
