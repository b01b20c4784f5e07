"""The exchange's event gateway: Twilio's Insights endpoint ``POST /v4/EndpointEvents``.

Clients post call feedback here exactly as Twilio's SDK posts it to eventgw.twilio.com
(voice/insights.py): JSON with the access token in ``X-Twilio-Token``. Twilio's signaling
protocol has no feedback frame (the SDK never sends feedback over the signaling socket), so
the exchange takes it over HTTP like Twilio, and a client needs one code path for both. The
WebSocket server (websockets) answers GET only, hence a small aiohttp server on a port of its
own (``events_port``, named to clients in the ``connected`` frame). Feedback is filed in the
exchange's call log under any CallSid the caller or callee knows the call by; other events
are accepted and dropped.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..voice.call import FEEDBACK_ISSUES
from ..voice.errors import TwilioError
from ..voice.insights import ENDPOINT

if TYPE_CHECKING:
    from .server import Exchange

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # bytes: an event is a few hundred


class EventGateway:
    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.events = 0  # events accepted (all groups)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.port: int | None = None
        self.tls = False

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(ENDPOINT, self._post)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context)
        await self._site.start()
        server = self._site._server  # aiohttp names no public accessor for the bound port
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        self.tls = ssl_context is not None
        log.info("event gateway on port %d", self.port)

    def url_for(self, host: str) -> str | None:
        """The endpoint's URL for a client that reached the exchange at ``host``."""
        if self.port is None:
            return None
        host = f"[{host}]" if ":" in host else host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{ENDPOINT}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _post(self, request: web.Request) -> web.Response:
        try:
            grant = self.exchange.auth.verify(request.headers.get("X-Twilio-Token"))
        except TwilioError as exc:
            return _error(401, exc.code, exc.message)
        try:
            event = await request.json()
        except ValueError:
            return _error(400, 31100, "the body is not JSON")
        if not isinstance(event, dict) or not isinstance(event.get("group"), str) or \
                not isinstance(event.get("name"), str):
            return _error(400, 31100, "an event needs a group and a name")
        self.events += 1
        if event["group"] != "feedback":
            return web.json_response({"accepted": True})
        payload = event.get("payload") if isinstance(event.get("payload"), dict) else {}
        score, issue = (None, None)
        if event["name"] == "received":
            score, issue = payload.get("quality_score"), payload.get("issue_name")
            if isinstance(score, bool) or score not in (1, 2, 3, 4, 5):
                return _error(400, 31100, f"quality_score must be 1-5, got {score!r}")
            if issue is not None and issue not in FEEDBACK_ISSUES:
                return _error(400, 31100, f"issue_name must be one of "
                                          f"{', '.join(FEEDBACK_ISSUES)}, got {issue!r}")
        elif event["name"] != "received-none":
            return _error(400, 31100, f"unknown feedback event {event['name']!r}")
        sids = [s for s in (payload.get("call_sid"), payload.get("temp_call_sid"))
                if isinstance(s, str) and s]
        call_id = self.exchange.records.log.add_feedback(sids, score, issue,
                                                         party=grant.identity)
        if call_id is None:
            return _error(404, 31000, f"no call {' / '.join(sids) or '(none named)'}")
        log.info("feedback from %s on %s: %s %s", grant.identity, sids[0], score, issue or "")
        return web.json_response({"accepted": True, "call": call_id})


def _error(status: int, code: int, message: str) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    return web.json_response(body, status=status)
