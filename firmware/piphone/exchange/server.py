"""The exchange: its WebSocket endpoint ``/signal``, and the one place that wires its parts.

``Exchange`` is the composition root. It builds the collaborators and hands each only what it
uses: token checks (auth.py), the registrations and the dial plan (routing.py), media
(media.py: legs and the audio bridge), the call log (records.py), the call layer (calls.py),
the event gateway for feedback (events.py) and, for every socket, a session (session.py).
Sessions hand call frames to the call layer; the call layer knows a session only as a
``Party`` (legs.py).

A client is untrusted, so the sockets it may hold are bounded ([limits] in exchange.toml,
refusal 31206): in all, per address, and per address before a valid token. A phone whose key is
removed (phones.py) loses its sessions at once.
"""

from __future__ import annotations

import asyncio
import http
import logging
import ssl
from typing import Any

import websockets
from websockets.asyncio.server import Server, ServerConnection, serve

from ..voice import protocol
from . import auth
from .calls import CallTable
from .config import ExchangeConfig
from .events import EventGateway
from .limits import OncePerMinute
from .mailbox_http import PATH as MAILBOX_PATH
from .mailbox_http import MailboxApi
from .media import MediaBridge
from .records import CallRecords
from .routing import DialPlan, Registrations
from .session import ClientSession, SessionServices

log = logging.getLogger(__name__)


class Exchange:
    """The local exchange: serve() sockets, close(); builds and wires its collaborators."""

    def __init__(self, config: ExchangeConfig) -> None:
        self.config = config
        self.auth = auth.Authenticator(config)  # its own key and the phones' (phones.py)
        if self.auth.phone_keys is not None:
            self.auth.phone_keys.on("revoked", self._keys_revoked)
        self.registrations: Registrations[ClientSession] = Registrations()
        self.dial_plan = DialPlan(config)
        self.media = MediaBridge.of(config)
        self.records = CallRecords.open(config.call_log)
        self.calls = CallTable(config, dial_plan=self.dial_plan,
                               registered=self.registrations.of, media=self.media,
                               records=self.records)
        self.events = EventGateway(self.auth.verify, self.records.log,  # feedback (events.py)
                                   config.limits.feedback_per_minute)
        self.events.more_routes.append(MailboxApi(self.auth.verify, self.calls.voicemail).add_to)
        self.calls.voicemail.notify = self._tell_mailbox
        self.sessions: set[ClientSession] = set()
        # Refusals a client can repeat at will: one log line a minute per address/identity.
        self.log_once = OncePerMinute(log)
        self._services = SessionServices(
            config=config, verify=self.auth.verify, registrations=self.registrations,
            calls=self.calls, gateway_url=self.events.url_for, closed=self.session_closed,
            log_once=self.log_once, registered=self._tell_registered)
        self._server: Server | None = None
        self._tls = False

    async def start(self, host: str | None = None, port: int | None = None,
                    ssl_context: ssl.SSLContext | None = None) -> None:
        self._tls = ssl_context is not None
        self.media.serve_on(host or self.config.host)
        self._server = await serve(
            self._handle_socket,
            host or self.config.host,
            self.config.port if port is None else port,
            ssl=ssl_context,
            process_request=_only_signal_path,
            ping_interval=None,  # liveness is the protocol's heartbeat
            max_size=4 * protocol.MAX_FRAME_BYTES,  # larger: closed; 64 KiB-256 KiB: dropped
        )
        log.info("exchange serving %s", self.url)
        self.auth.start()
        port = self.port if port is None else port
        events_port = (self.config.events_port if self.config.events_port is not None
                       else 0 if port == 0 else self.port + 1)
        await self.events.start(host or self.config.host, events_port, ssl_context)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        assert self._server is not None
        host = self._server.sockets[0].getsockname()[0]
        return f"{'wss' if self._tls else 'ws'}://{host}:{self.port}/signal"

    async def _handle_socket(self, ws: ServerConnection) -> None:
        address = ws.remote_address[0] if ws.remote_address else "?"
        refusal = self._over_a_socket_limit(address)
        if refusal is not None:
            self.log_once(f"sockets:{address}", "socket from %s refused: %s", address, refusal)
            await _refuse(ws, refusal)
            return
        session = ClientSession(self._services, ws)
        self.sessions.add(session)
        await session.run()

    def _over_a_socket_limit(self, address: str) -> str | None:
        config = self.config
        if len(self.sessions) >= config.limits.max_sessions:
            return f"the exchange holds {config.limits.max_sessions} sessions already"
        mine = [s for s in self.sessions if s.address == address]
        if len(mine) >= config.limits.max_sockets_per_address:
            return f"{config.limits.max_sockets_per_address} sockets from this address already"
        if sum(1 for s in mine if not s.authenticated) >= \
                config.limits.max_unauthenticated_per_address:
            return (f"{config.limits.max_unauthenticated_per_address} sockets from this address "
                    "have not sent a valid token yet")
        return None

    def session_closed(self, session: ClientSession) -> None:
        """A session ended or was dropped (called once per session, more is harmless)."""
        if session not in self.sessions:
            return
        self.sessions.discard(session)
        if session.identity is not None:
            self.registrations.remove(session.identity, session)
        session.registered = False
        log.info("%s: closed", session)
        self.calls.session_closed(session)

    def _tell_registered(self, session: ClientSession) -> None:
        """A device registered: it learns its mailbox (voicemail.py, piphone's extension)."""
        notice = self.calls.voicemail.notice(session.identity or "")
        if notice is not None:
            session.send("voicemail", **notice,
                         url=self.events.url_for(session.host, MAILBOX_PATH) or "")

    def _tell_mailbox(self, identity: str) -> None:
        """The mailbox of ``identity`` changed: each of its registered devices is told."""
        for session in self.registrations.of(identity):
            self._tell_registered(session)

    def _keys_revoked(self, sids: set[str]) -> None:
        """A removed phone's sessions end now, not when their tokens expire."""
        for session in list(self.sessions):
            if session.grant is not None and session.grant.key_sid in sids:
                log.info("%s: its phone key was removed; closing", session)
                session.end(31204, "access token revoked: this phone's key was removed")

    async def close(self) -> None:
        self.auth.close()
        await self.calls.close()
        await self.events.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.records.close()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()


async def _refuse(ws: ServerConnection, message: str) -> None:
    """Tell a client over a limit why (31206, as Twilio's SDK knows it), then close."""
    try:
        async with asyncio.timeout(ClientSession.CLOSE_TIMEOUT):
            await ws.send(protocol.encode("error", **protocol.error_payload(31206, message)))
            await ws.close(code=1013, reason="try again later")
    except (TimeoutError, websockets.ConnectionClosed):
        ws.transport.abort()


def _only_signal_path(connection: ServerConnection, request: Any) -> Any:
    if request.path.split("?", 1)[0] != "/signal":
        return connection.respond(http.HTTPStatus.NOT_FOUND, "piphone exchange: use /signal\n")
    return None
