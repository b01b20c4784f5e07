"""The exchange's WebSocket endpoint ``/signal``: sessions, registrations and calls.

Each WebSocket is a ``ClientSession`` (one Device). It must send ``listen`` with a valid token
first; then it may ``register`` and place or answer calls. Every frame is validated at the
edge: a malformed one gets an ``error`` frame (31100) and is dropped; the session goes on.
Call logic lives in calls.py; this module only moves frames.
"""

from __future__ import annotations

import asyncio
import http
import logging
import ssl
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.server import Server, ServerConnection, serve

from ..calllog import CallLog
from ..voice import protocol
from ..voice.errors import TwilioError
from ..voice.media import MediaSettings, is_loopback
from ..voice.tasks import TaskSet
from . import auth
from .calls import CallTable
from .config import ExchangeConfig
from .events import EventGateway
from .records import CallRecords
from .routing import DialPlan, Registrations

log = logging.getLogger(__name__)

REGION = "local"


class ClientSession:
    """One client's signaling stream."""

    # Seconds a socket may stay without a valid token. A refused token does not close the
    # socket at once: the client may send a fresh listen (update_token), and clients that
    # reconnect on every close (Twilio's SDK, piphone) would otherwise loop on the refusal.
    AUTH_TIMEOUT = 30.0

    def __init__(self, exchange: Exchange, ws: ServerConnection) -> None:
        self.exchange = exchange
        self.ws = ws
        self.grant: auth.Grant | None = None
        self.registered = False
        self.peer = ("{}:{}".format(*ws.remote_address[:2]) if ws.remote_address
                     else "?")
        self._out = TaskSet(self)  # frames on their way out

    @property
    def identity(self) -> str | None:
        return self.grant.identity if self.grant else None

    def send(self, type_: str, **payload: Any) -> None:
        """Queue a frame; a closed socket drops it (the call logic learns of the close)."""
        self._out.spawn(self._send_text(protocol.encode(type_, **payload)))

    async def _send_text(self, text: str) -> None:
        try:
            await self.ws.send(text)
        except websockets.ConnectionClosed:
            log.debug("%s: frame to a closed socket dropped", self)

    def send_error(self, code: int, message: str, callsid: str | None = None) -> None:
        self.send("error", **protocol.error_payload(code, message, callsid))

    async def run(self) -> None:
        heartbeat = asyncio.ensure_future(self._heartbeat())
        auth_timer = self._out.spawn(self._close_unless_authenticated())
        try:
            async for text in self.ws:
                self._receive(text)
        except websockets.ConnectionClosed:
            pass
        finally:
            heartbeat.cancel()
            auth_timer.cancel()  # a closed session must not keep a 30 s timer alive
            self.exchange.session_closed(self)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.exchange.config.heartbeat_interval)
            await self._send_text(protocol.HEARTBEAT)

    def _receive(self, text: str | bytes) -> None:
        try:
            frame = protocol.decode(text, protocol.CLIENT_FRAMES)
        except protocol.ProtocolError as exc:
            log.warning("%s: dropped a malformed frame: %s", self, exc)
            self.send_error(31100, f"malformed frame: {exc}")
            return
        if frame is None:
            return  # heartbeat echo
        try:
            self._handle(frame)
        except Exception:  # a bug handling one frame must not end the session
            log.exception("%s: error handling %s", self, frame.type)
            self.send_error(31000, f"internal error handling {frame.type}")

    def _handle(self, frame: protocol.Frame) -> None:
        payload = frame.payload
        if frame.type == "listen":
            self._listen(payload["token"])
            return
        if self.grant is None:
            self.send_error(31201, f"{frame.type} before listen: authenticate first")
            return
        if frame.type == "register":
            self._register(bool(payload["media"].get("audio")))
        else:
            self.exchange.calls.handle(self, frame)

    def _listen(self, token: str) -> None:
        try:
            grant = self.exchange.auth.verify(token)
        except TwilioError as exc:
            log.warning("%s: token refused: %s", self, exc.message)
            self.send_error(exc.code, exc.message)
            return
        if self.grant is not None and grant.identity != self.grant.identity:
            self.send_error(31204, "a new token must keep the same identity")
            return
        first = self.grant is None
        self.grant = grant
        gateway = self.exchange.events.url_for(_host_of(self.ws))
        self.send("connected", region=REGION, edge=REGION, home=REGION,
                  token={"identity": grant.identity, "ttl": grant.ttl()},
                  **({"eventgw": gateway} if gateway else {}))
        if first:
            log.info("%s: listening as %s", self, grant.identity)

    async def _close_unless_authenticated(self) -> None:
        await asyncio.sleep(self.AUTH_TIMEOUT)
        if self.grant is None:
            log.info("%s: no valid token within %.0f s; closing", self, self.AUTH_TIMEOUT)
            await self.ws.close(code=4003, reason="no valid access token")

    def _register(self, audio: bool) -> None:
        assert self.grant is not None and self.identity is not None
        if audio and not self.grant.incoming_allowed:
            self.send_error(*auth.INCOMING_REFUSED)
            return
        if audio:
            self.exchange.registrations.add(self.identity, self)
            if not self.registered:
                log.info("%s: %s registered", self, self.identity)
            self.registered = True
            self.send("ready")
        else:
            self.exchange.registrations.remove(self.identity, self)
            self.registered = False
            log.info("%s: %s unregistered", self, self.identity)
            self.send("offline")

    def end(self, code: int, message: str, close_code: int = 4003) -> None:
        """Send an error frame, then close the socket."""
        async def end() -> None:
            await self._send_text(protocol.encode("error", **protocol.error_payload(code, message)))
            await self.ws.close(code=close_code, reason=message[:120])

        self._out.spawn(end())

    def __repr__(self) -> str:
        return f"<session {self.identity or '-'}@{self.peer}>"


class Exchange:
    def __init__(self, config: ExchangeConfig) -> None:
        self.config = config
        self.auth = auth.Authenticator(config)  # its own key and the phones' (phones.py)
        if self.auth.phone_keys is not None:
            self.auth.phone_keys.on("revoked", self._keys_revoked)
        self.registrations: Registrations[ClientSession] = Registrations()
        self.dial_plan = DialPlan(config)
        self.media_settings = MediaSettings(ice_addresses=config.ice_addresses,
                                            codec_preferences=config.codec_preferences,
                                            max_remote_candidates=config.max_remote_candidates)
        self.calls = CallTable(self)
        self.records = CallRecords(CallLog(config.call_log or ":memory:", owner="exchange"))
        self.events = EventGateway(self)  # feedback from clients (events.py)
        self.sessions: set[ClientSession] = set()
        self._server: Server | None = None
        self._tls = False

    async def start(self, host: str | None = None, port: int | None = None,
                    ssl_context: ssl.SSLContext | None = None) -> None:
        self._tls = ssl_context is not None
        # Bound to loopback, our clients are on this machine: offer them 127.0.0.1 (media.py).
        self.media_settings = replace(self.media_settings,
                                      ice_loopback=is_loopback(host or self.config.host))
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
        session = ClientSession(self, ws)
        self.sessions.add(session)
        await session.run()

    def session_closed(self, session: ClientSession) -> None:
        self.sessions.discard(session)
        if session.identity is not None:
            self.registrations.remove(session.identity, session)
        log.info("%s: closed", session)
        self.calls.session_closed(session)

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
        self.records.log.close()  # and its claim on the file (calllog.py)

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()


def _host_of(ws: ServerConnection) -> str:
    """The host name the client used to reach us (for URLs we hand it)."""
    request = ws.request
    host = request.headers.get("Host") if request is not None else None
    return urlsplit(f"//{host}").hostname or "127.0.0.1" if host else "127.0.0.1"


def _only_signal_path(connection: ServerConnection, request: Any) -> Any:
    if request.path.split("?", 1)[0] != "/signal":
        return connection.respond(http.HTTPStatus.NOT_FOUND, "piphone exchange: use /signal\n")
    return None
