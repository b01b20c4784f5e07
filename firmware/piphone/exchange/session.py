"""One client's signaling session at the exchange: the session layer.

Each WebSocket on ``/signal`` is a ``ClientSession`` (one Device). It must send ``listen`` with
a valid token first; then it may ``register`` and place or answer calls. Every frame is
validated at the edge: a malformed one gets an ``error`` frame (31100) and is dropped; the
session goes on. Listen, register, the token's expiry and liveness are handled here; every
other frame goes to the call layer (calls.py) through ``SessionServices.calls``, which knows
the session only as a ``Party`` (legs.py). The Exchange (server.py) accepts the sockets and
wires each session to what it uses (``SessionServices``).

A client is untrusted, so what it can make the exchange hold is bounded ([limits] in
exchange.toml, refusals 31206): registrations per identity; frames queued for it (one writer
per session, a bounded queue: a client that stops reading is disconnected); malformed frames a
minute. A session that stops echoing the heartbeat is dropped (and unregistered) after
``heartbeat_timeout``; one whose token expires loses its registration with 31205 unless it sent
a fresh token first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import websockets
from websockets.asyncio.server import ServerConnection

from ..logsafe import text
from ..voice import protocol
from ..voice.errors import TwilioError
from ..voice.tasks import TaskSet
from . import auth
from .config import ExchangeConfig
from .limits import OncePerMinute, Window
from .routing import Registrations

log = logging.getLogger(__name__)

REGION = "local"


class CallFrames(Protocol):
    """The call layer as a session sees it (calls.py's CallTable)."""

    def handle(self, session: ClientSession, frame: protocol.Frame) -> None:
        """A call frame (invite, answer, hangup, ...) of an authenticated session."""


@dataclass(frozen=True)
class SessionServices:
    """What a session uses of the exchange; the Exchange (server.py) makes one for all."""

    config: ExchangeConfig
    verify: Callable[[object], auth.Grant]  # an access token's grant, or TwilioError
    registrations: Registrations[ClientSession]  # identity -> its registered sessions
    calls: CallFrames
    gateway_url: Callable[[str], str | None]  # the event gateway for a host the client used
    closed: Callable[[ClientSession], None]  # the session ended (more calls are harmless)
    log_once: OncePerMinute  # refusals a client can repeat at will: a line a minute per key
    registered: Callable[[ClientSession], None] = lambda session: None  # voicemail's notice


class ClientSession:
    """One client's signaling stream."""

    # Seconds a socket may stay without a valid token. A refused token does not close the
    # socket at once: the client may send a fresh listen (update_token), and clients that
    # reconnect on every close (Twilio's SDK, piphone) would otherwise loop on the refusal.
    AUTH_TIMEOUT = 30.0
    CLOSE_TIMEOUT = 2.0  # seconds for the closing handshake of a session we drop
    # Frames a session may still send once its token expired: it may end what it has.
    AFTER_EXPIRY = frozenset({"listen", "hangup", "reject"})

    def __init__(self, services: SessionServices, ws: ServerConnection) -> None:
        self.services = services
        self.config = services.config
        self.ws = ws
        self.grant: auth.Grant | None = None
        self.registered = False
        self.expired = False  # the token ran out; only a fresh listen mends it
        self.address = ws.remote_address[0] if ws.remote_address else "?"
        self.peer = ("{}:{}".format(*ws.remote_address[:2]) if ws.remote_address
                     else "?")
        self.dropped = False
        self._queue: asyncio.Queue[str] = asyncio.Queue(self.config.limits.send_queue)
        self._bad_frames = Window(self.config.limits.max_bad_frames)
        self._last_heard = asyncio.get_running_loop().time()
        self._expiry: asyncio.TimerHandle | None = None
        self._tasks = TaskSet(self)  # the writer, the keep-alive, the auth timer, a close

    @property
    def identity(self) -> str | None:
        return self.grant.identity if self.grant else None

    @property
    def authenticated(self) -> bool:
        return self.grant is not None

    # --- sending: one writer, a bounded queue ------------------------------------------
    def send(self, type_: str, **payload: Any) -> None:
        """Queue a frame; a closed socket drops it (the call logic learns of the close)."""
        self._enqueue(protocol.encode(type_, **payload))

    def send_error(self, code: int, message: str, callsid: str | None = None) -> None:
        self.send("error", **protocol.error_payload(code, message, callsid))

    def _enqueue(self, text_: str) -> None:
        if self.dropped:
            return
        try:
            self._queue.put_nowait(text_)
        except asyncio.QueueFull:
            self.drop(f"does not read its frames ({self.config.limits.send_queue} waiting)",
                      code=1008, abort=True)

    async def _write(self) -> None:
        while True:
            frame = await self._queue.get()
            try:
                await self.ws.send(frame)
            except websockets.ConnectionClosed:
                log.debug("%s: frame to a closed socket dropped", self)
                return
            finally:
                self._queue.task_done()

    # --- receiving ---------------------------------------------------------------------
    async def run(self) -> None:
        self._tasks.spawn(self._write())
        self._tasks.spawn(self._keep_alive())
        self._tasks.spawn(self._close_unless_authenticated())
        loop = asyncio.get_running_loop()
        try:
            async for message in self.ws:
                if self.dropped:
                    continue  # the close is under way
                self._last_heard = loop.time()
                self._receive(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.services.closed(self)
            if self._expiry is not None:
                self._expiry.cancel()
            self._tasks.cancel()

    def _receive(self, message: str | bytes) -> None:
        """One frame from the client. Nothing it holds may end the session or reach a log
        unescaped: every failure here is a logged, bounded protocol error."""
        try:
            frame = protocol.decode(message, protocol.CLIENT_FRAMES)
        except protocol.ProtocolError as exc:
            self._bad_frame(31100, f"malformed frame: {exc}")
            return
        except Exception as exc:  # decode promises ProtocolError only; a bug must not kill us
            log.exception("%s: decoding a frame failed", self)
            self._bad_frame(31100, f"malformed frame: {text(type(exc).__name__)}")
            return
        if frame is None:
            return  # heartbeat echo
        try:
            self._handle(frame)
        except Exception:  # a bug handling one frame must not end the session
            log.exception("%s: error handling %s", self, frame.type)
            self._bad_frame(31000, f"internal error handling {frame.type}")

    def _bad_frame(self, code: int, message: str) -> None:
        """Refuse a frame: an error to the client, a line in the log (once a minute per
        address), and a disconnection once it has sent too many a minute."""
        self.services.log_once(f"bad:{self.address}", "%s: %s", self, message)
        self.send_error(code, message)
        if not self._bad_frames.add():
            self.end(31206, f"over {self.config.limits.max_bad_frames} refused frames a minute",
                     close_code=1008)

    def _handle(self, frame: protocol.Frame) -> None:
        payload = frame.payload
        if frame.type == "listen":
            self._listen(payload["token"])
            return
        if self.grant is None:
            self._bad_frame(31201, f"{frame.type} before listen: authenticate first")
            return
        if self.expired and frame.type not in self.AFTER_EXPIRY:
            self.send_error(31205, "access token expired: send listen with a fresh token")
            return
        if frame.type == "register":
            self._register(bool(payload["media"].get("audio")))
        else:
            self.services.calls.handle(self, frame)

    def _listen(self, token: str) -> None:
        try:
            grant = self.services.verify(token)
        except TwilioError as exc:
            self._bad_frame(exc.code, text(exc.message))
            return
        if self.grant is not None and grant.identity != self.grant.identity:
            self._bad_frame(31204, "a new token must keep the same identity")
            return
        first = self.grant is None
        self.grant = grant
        self.expired = False
        self._arm_expiry(grant)
        gateway = self.services.gateway_url(_host_of(self.ws))
        self.send("connected", region=REGION, edge=REGION, home=REGION,
                  token={"identity": grant.identity, "ttl": grant.ttl()},
                  **({"eventgw": gateway} if gateway else {}))
        if first:
            log.info("%s: listening as %s", self, text(grant.identity))

    # --- registration --------------------------------------------------------------------
    def _register(self, audio: bool) -> None:
        identity = self.identity
        assert identity is not None
        registrations = self.services.registrations
        if not audio:
            self._unregister()
            self.send("offline")
            return
        assert self.grant is not None
        if not self.grant.incoming_allowed:  # the token lets nobody ring it
            self.send_error(*auth.INCOMING_REFUSED)
            return
        cap = self.config.limits.max_registrations_per_identity
        if not self.registered and registrations.count(identity) >= cap:
            self.services.log_once(f"registrations:{identity}",
                                   "%s: register refused: %s has %d registrations already",
                                   self, text(identity), cap)
            self.send_error(31206, f"{cap} devices are registered as this identity already")
            self.send("offline")  # the SDK's register() settles on it
            return
        registrations.add(identity, self)
        first = not self.registered  # (a client registers again every 30 s)
        if first:
            log.info("%s: %s registered", self, text(identity))
        self.registered = True
        self.send("ready")
        if first:
            self.services.registered(self)

    def _unregister(self) -> None:
        if self.identity is not None:
            self.services.registrations.remove(self.identity, self)
        if self.registered:
            log.info("%s: %s unregistered", self, text(self.identity))
        self.registered = False

    # --- timers: token expiry, liveness, authentication -------------------------------------
    def _arm_expiry(self, grant: auth.Grant) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = asyncio.get_running_loop().call_later(
            max(0.0, grant.expires_at - time.time()), self._token_expired)

    def _token_expired(self) -> None:
        """At the token's exp, as Twilio's edge: 31205, and the registration ends (the SDK
        stops re-registering on 31205; ``offline`` tells it it is no longer reachable)."""
        self._expiry = None
        if self.dropped or self.grant is None:
            return
        self.expired = True
        log.info("%s: access token expired", self)
        self.send_error(31205, "access token expired")
        if self.registered:
            self._unregister()
            self.send("offline")

    async def _keep_alive(self) -> None:
        """A heartbeat every ``heartbeat_interval``; a client that has sent nothing (not even
        the heartbeat's echo) for ``heartbeat_timeout`` is gone or frozen: it is dropped."""
        loop = asyncio.get_running_loop()
        interval, timeout = self.config.heartbeat_interval, self.config.limits.heartbeat_timeout
        next_beat = loop.time() + interval
        while True:
            silent_until = self._last_heard + timeout
            await asyncio.sleep(max(0.0, min(next_beat, silent_until) - loop.time()))
            now = loop.time()
            if now >= self._last_heard + timeout:
                self.drop(f"silent for {timeout:g} s (no heartbeat echo)", code=4001)
                return
            if now >= next_beat:
                self._enqueue(protocol.HEARTBEAT)
                next_beat = now + interval

    async def _close_unless_authenticated(self) -> None:
        await asyncio.sleep(self.AUTH_TIMEOUT)
        if self.grant is None:
            self.drop(f"no valid token within {self.AUTH_TIMEOUT:.0f} s", code=4003,
                      level=logging.INFO, reason="no valid access token")

    # --- ending --------------------------------------------------------------------------
    def end(self, code: int, message: str, close_code: int = 4003) -> None:
        """Send an error frame, then close the socket (the frame goes first)."""
        self.send_error(code, message)
        self.drop(message, code=close_code)

    def drop(self, why: str, *, code: int, abort: bool = False, level: int = logging.WARNING,
             reason: str = "") -> None:
        """Disconnect the client now: one log line; it is unregistered and its calls learn
        of it at once; the socket closes in the background (aborted if it does not read)."""
        if self.dropped:
            return
        self.dropped = True
        log.log(level, "%s: %s; disconnecting", self, why)
        # Not from here: drop() may be called from inside the call logic (a frame it sent
        # filled the queue), which must not be re-entered.
        asyncio.get_running_loop().call_soon(self.services.closed, self)
        self._tasks.spawn(self._close(code, reason or why, abort))

    async def _close(self, code: int, reason: str, abort: bool) -> None:
        if not abort:
            try:
                async with asyncio.timeout(self.CLOSE_TIMEOUT):
                    await self._queue.join()  # the error frames that say why go first
                    await self.ws.close(code=code, reason=reason[:100])
                return
            except TimeoutError:
                pass
        self.ws.transport.abort()  # it does not read: no closing handshake to wait for

    @property
    def host(self) -> str:
        """The host name the client reached us by (for URLs we hand it)."""
        return _host_of(self.ws)

    def __repr__(self) -> str:
        identity = text(self.identity, 64) if self.identity else "-"
        return f"<session {identity}@{self.peer}>"


def _host_of(ws: ServerConnection) -> str:
    """The host name the client used to reach us (for URLs we hand it)."""
    request = ws.request
    host = request.headers.get("Host") if request is not None else None
    return urlsplit(f"//{host}").hostname or "127.0.0.1" if host else "127.0.0.1"
