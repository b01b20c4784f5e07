"""The signaling stream ("PStream"): one WebSocket per Device, kept open by itself.

On every open it sends ``listen`` first, then whatever was queued while it was down. It echoes
the server's heartbeat, treats 15 s without a frame as a dead socket, and reconnects with
exponential backoff (factor 2, jitter 0.4; a connection that lasted over 10 s resets it).
Frames are validated at the edge: a malformed one is logged and dropped.

Events (pyee): ``open`` (socket up, listen sent), ``frame`` (protocol.Frame), ``close``
(socket lost; it will reconnect unless closed for good), ``error`` (TwilioError: 53000 when a
connection attempt failed on a certificate, the clock or a surprise; 31005 when an open stream
broke on a surprise; a network that is away is logged, not reported).

Given several URLs (the SDK's ``edge`` list), it falls back in order as the SDK's WSTransport
does: an attempt that fails or times out moves on to the next URL (wrapping around); a stream
that was open and broke is retried on the same URL first. Nothing escapes the loop: any
failure is logged (each reason once until the stream is open again), reported when a maker
must act on it, and retried with the backoff. wss:// waits for a set clock
(tls.clock_problem) before it tries.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from ..backoff import Backoff
from . import protocol, tls
from .errors import TwilioError
from .events import Emitter
from .tasks import TaskSet

log = logging.getLogger(__name__)


class SignalingState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


class Signaling(Emitter):
    STABLE_AFTER = 10.0  # seconds open before backoff resets

    def __init__(
        self,
        url: str | Sequence[str],
        token: Callable[[], str],
        *,
        ssl_context: ssl.SSLContext | None = None,
        heartbeat_timeout: float = protocol.HEARTBEAT_TIMEOUT,
        connect_timeout: float = protocol.CONNECT_TIMEOUT,
        backoff: Backoff | None = None,
        browserinfo: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.urls = (url,) if isinstance(url, str) else tuple(url)
        if not self.urls:
            raise ValueError("Signaling needs at least one URL")
        self._index = 0  # of the URL in use (or tried next)
        self._token = token  # read at every listen: the Device holds the token
        # wss:// without a context gets the verified default (tls.py), built once, before the
        # first secure attempt, in a thread: loading the trust store takes 50-250 ms.
        self._ssl = ssl_context
        self.heartbeat_timeout = heartbeat_timeout
        self.connect_timeout = connect_timeout
        # As the SDK (factor 2, jitter 0.4, Backoff's defaults): with fallback URLs the first
        # retry waits a random 1-5 s, so that phones cut off by an edge's outage do not all
        # arrive at the next edge at once.
        self.backoff = backoff or Backoff(
            first=random.uniform(1.0, 5.0) if len(self.urls) > 1 else 0.1)
        self.last_failure: TwilioError | None = None  # of the last attempt; None once open
        self._failures = 0  # attempts failed in a row
        self._logged: set[str] = set()  # failures logged since the stream was last open
        self.browserinfo = browserinfo or default_browserinfo()
        self.state = SignalingState.DISCONNECTED
        self._ws: ClientConnection | None = None
        self._queue: list[tuple[str, dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self._sending = TaskSet(self)  # frames on their way out
        # Awaited before every connect attempt (the Device renews an expired token there).
        self.before_connect: Callable[[], Awaitable[None]] | None = None

    @property
    def url(self) -> str:
        """The URL connected to, or tried next."""
        return self.urls[self._index]

    @property
    def closed(self) -> bool:
        """Closed for good (``close()``, or the server's ``close`` frame)."""
        return self.state is SignalingState.CLOSED

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of wss:// (None before the first secure attempt, or for ws://)."""
        return self._ssl

    # --- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None and self.state is not SignalingState.CLOSED:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="signaling")

    async def close(self) -> None:
        """Close for good (idempotent)."""
        # Frames sent just before (a hangup from Device.destroy) must go out before the socket
        # closes, or the far end only learns of the hang-up when the exchange's grace ends.
        await self._sending.wait(timeout=1)
        self._set_state(SignalingState.CLOSED)
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def move(self, urls: Sequence[str], ssl_context: ssl.SSLContext | None) -> None:
        """Use other URLs from now on (Device.update_options): an open socket closes, and the
        stream connects to the first of them without the backoff of a failure."""
        if not urls:
            raise ValueError("Signaling needs at least one URL")
        self.urls, self._index, self._ssl = tuple(urls), 0, ssl_context
        self.backoff.reset()
        log.info("signaling moves to %s", self.url)
        self.drop()

    def drop(self) -> None:
        """Close the current socket as if the network failed; it reconnects (tests, recovery)."""
        if self._ws is not None:
            self._sending.spawn(self._ws.close(code=4000, reason="dropped"))

    # --- sending -------------------------------------------------------------------------
    def send(self, type_: str, payload: dict[str, Any], *, retry: bool = True) -> bool:
        """Send a frame now; if the socket is down, queue it (``retry``) and report 31009."""
        if self._ws is not None and self.state is SignalingState.CONNECTED:
            self._sending.spawn(self._send_text(protocol.encode(type_, **payload)))
            return True
        if retry:
            self._queue.append((type_, payload))
        self.emit("error", TwilioError(31009))
        return False

    def token_changed(self) -> None:
        """The token changed: sent at once as ``listen`` when connected, else on the next
        open."""
        if self.state is SignalingState.CONNECTED:
            self._listen()

    async def _send_text(self, text: str) -> None:
        ws = self._ws
        if ws is None:
            return
        try:
            await ws.send(text)
        except websockets.ConnectionClosed:
            log.debug("send on a closed socket dropped")
        except Exception as exc:  # the stream is in an unknown state: start afresh
            self._failed(TwilioError(31005, f"signaling stream to {self.url} broke while "
                                     f"sending: {_cause(exc)}", original_error=exc),
                         report=True, unexpected=True)
            try:
                await ws.close(code=1011, reason="send failed")
            except Exception:
                log.debug("closing the broken stream failed too", exc_info=True)

    def _listen(self) -> None:
        payload = {"browserinfo": self.browserinfo, "reconnectTimeout": 0, "token": self._token()}
        self._sending.spawn(self._send_text(protocol.encode("listen", **payload)))

    # --- the connection loop -------------------------------------------------------------
    async def _run(self) -> None:
        while self.state is not SignalingState.CLOSED:
            self._set_state(SignalingState.CONNECTING)
            opened_at = await self._attempt(self.url)
            if self.closed:  # close() while we tried
                break
            self._set_state(SignalingState.DISCONNECTED)
            if opened_at is not None:
                self.emit("close")
                if time.monotonic() - opened_at > self.STABLE_AFTER:
                    self.backoff.reset()
            delay = self.backoff.next()
            log.info("signaling reconnects to %s in %.2f s", self.url, delay)
            await asyncio.sleep(delay)

    async def _attempt(self, url: str) -> float | None:
        """One connection to ``url``, read until it ends; returns when it opened (or None).
        Every failure is reported here: nothing but cancellation leaves this method."""
        clock = tls.clock_problem() if tls.is_secure(url) else None
        if clock is not None:  # every certificate would look invalid: not the edge's fault
            self._failed(TwilioError(53000, clock), report=True)
            return None
        opened_at = None
        try:
            if self._ssl is None and tls.is_secure(url):
                self._ssl = await asyncio.to_thread(tls.client_context)
            if self.before_connect is not None:
                await self.before_connect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # ours (or the Device's hook), not the server's: same URL
            self._failed(TwilioError(53000, f"preparing to connect failed: {_cause(exc)}",
                                     original_error=exc), report=True, unexpected=True)
            return None
        try:
            ws = await connect(
                url,
                open_timeout=self.connect_timeout,
                ping_interval=None,  # liveness is the protocol's heartbeat
                max_size=4 * protocol.MAX_FRAME_BYTES,
                close_timeout=1,
                **tls.connect_options(url, self._ssl),
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # as the SDK: a failed attempt moves on to the next URL
            unexpected = not isinstance(exc, _EXPECTED)
            self._failed(TwilioError(53000, _connect_failure(exc, url, self.connect_timeout),
                                     original_error=exc),
                         report=unexpected or isinstance(exc, ssl.SSLError),
                         unexpected=unexpected)
            self._next_url()
            return None
        try:
            async with ws:
                opened_at = time.monotonic()
                if self._failures:
                    log.info("signaling connected to %s (after %d failed attempts)", url,
                             self._failures)
                self._failures, self.last_failure = 0, None
                self._logged.clear()
                self._ws = ws
                self._set_state(SignalingState.CONNECTED)
                self._listen()
                queued, self._queue = self._queue, []
                for type_, payload in queued:
                    self.send(type_, payload)
                self.emit("open")
                await self._read(ws)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the same URL first, as the SDK does after an open stream
            unexpected = not isinstance(exc, _EXPECTED)
            self._failed(TwilioError(31005, f"signaling stream to {url} broke: "
                                     f"{_cause(exc)}", original_error=exc),
                         report=unexpected, unexpected=unexpected)
        finally:
            self._ws = None
        return opened_at

    def _next_url(self) -> None:
        if len(self.urls) > 1:
            self._index = (self._index + 1) % len(self.urls)
            log.info("signaling falls back to %s", self.url)

    def _failed(self, error: TwilioError, *, report: bool, unexpected: bool = False) -> None:
        """Log a failure once until the stream is open again (each reason once, also when
        fallback alternates between URLs); ``report``: also an ``error`` event.

        Reported is what a maker must act on: a refused certificate, an unset clock, a
        surprise. A network or server that is away shows as unregistered/reconnecting (and
        in the log), as it always did."""
        self._failures += 1
        self.last_failure = error
        text = error.message
        if text in self._logged:
            log.debug("signaling: %s (again)", text)
        elif unexpected:  # a bug or a surprise: its traceback, once
            cause = error.original_error
            log.error("signaling: %s", text,
                      exc_info=cause if isinstance(cause, BaseException) else None)
        else:
            log.warning("signaling: %s", text)
        if len(self._logged) >= 32:  # reasons with changing details must not grow it forever
            self._logged.clear()
        self._logged.add(text)
        if report:
            self.emit("error", error)

    async def _read(self, ws: ClientConnection) -> None:
        while True:
            try:
                text = await asyncio.wait_for(ws.recv(), self.heartbeat_timeout)
            except TimeoutError:
                log.warning("no frame or heartbeat for %.0f s: socket is dead",
                            self.heartbeat_timeout)
                await ws.close(code=4001, reason="heartbeat timeout")
                return
            except websockets.ConnectionClosed as exc:
                log.info("signaling socket closed: %s", exc)
                return
            if text == protocol.HEARTBEAT:
                await self._send_text(protocol.HEARTBEAT)
                continue
            try:
                frame = protocol.decode(text, protocol.SERVER_FRAMES)
            except protocol.ProtocolError as exc:
                log.warning("dropped a malformed frame from the server: %s", exc)
                continue
            if frame is None:
                continue
            if frame.type == "close":
                log.info("server closed the stream for good")
                self._set_state(SignalingState.CLOSED)
                self.emit("frame", frame)
                await ws.close()
                return
            self.emit("frame", frame)

    def _set_state(self, state: SignalingState) -> None:
        if self.state is SignalingState.CLOSED or self.state is state:
            return
        log.debug("signaling %s -> %s", self.state.value, state.value)
        self.state = state


def default_browserinfo() -> dict[str, Any]:
    import platform

    from .. import __version__

    return {
        "p": "piphone",
        "v": __version__,
        "browser": {"userAgent": f"piphone/{__version__} Python/{platform.python_version()}",
                    "platform": platform.machine()},
        "plugin": "rtc",
    }




# Failures of the network or the server, reported in words without a traceback; anything else
# is a surprise, logged once with its traceback (and retried all the same).
_EXPECTED = (OSError, TimeoutError, websockets.WebSocketException)


def _cause(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _connect_failure(exc: BaseException, url: str, timeout: float) -> str:
    """Why a connection attempt to ``url`` failed, in words."""
    reason = tls.explain(exc, url)
    if reason is not None:
        return reason
    if isinstance(exc, TimeoutError):
        return f"no answer from {url} within {timeout:.0f} s"
    if isinstance(exc, websockets.InvalidStatus):
        return f"{url} refused the WebSocket: HTTP {exc.response.status_code}"
    if isinstance(exc, OSError):
        return f"cannot reach {url}: {exc.strerror or _cause(exc)}"
    return f"connecting to {url} failed: {_cause(exc)}"
