"""The signaling stream ("PStream"): one WebSocket per Device, kept open by itself.

On every open it sends ``listen`` first, then whatever was queued while it was down. It echoes
the server's heartbeat, treats 15 s without a frame as a dead socket, and reconnects with
exponential backoff (factor 2, jitter 0.4; a connection that lasted over 10 s resets it).
Frames are validated at the edge: a malformed one is logged and dropped.

Events (pyee): ``open`` (socket up, listen sent), ``frame`` (protocol.Frame), ``close``
(socket lost; it will reconnect unless closed for good), ``error`` (TwilioError).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from . import protocol
from .errors import TwilioError
from .events import Emitter
from .tasks import TaskSet

log = logging.getLogger(__name__)


class SignalingState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


class Backoff:
    """Exponential backoff with jitter, as Twilio's SDK does it (factor 2, jitter 0.4)."""

    def __init__(self, first: float = 0.1, cap: float = 20.0, factor: float = 2.0,
                 jitter: float = 0.4, rng: random.Random | None = None) -> None:
        self.first, self.cap, self.factor, self.jitter = first, cap, factor, jitter
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        base = min(self.cap, self.first * self.factor ** self.attempt)
        self.attempt += 1
        return base * (1 + self.jitter * (2 * self._rng.random() - 1))

    def reset(self) -> None:
        self.attempt = 0


class Signaling(Emitter):
    STABLE_AFTER = 10.0  # seconds open before backoff resets

    def __init__(
        self,
        url: str,
        token: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        heartbeat_timeout: float = protocol.HEARTBEAT_TIMEOUT,
        connect_timeout: float = protocol.CONNECT_TIMEOUT,
        backoff: Backoff | None = None,
        browserinfo: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.url = url
        self.token = token
        self._ssl = ssl_context
        self.heartbeat_timeout = heartbeat_timeout
        self.connect_timeout = connect_timeout
        self.backoff = backoff or Backoff()
        self.browserinfo = browserinfo or default_browserinfo()
        self.state = SignalingState.DISCONNECTED
        self._ws: ClientConnection | None = None
        self._queue: list[tuple[str, dict]] = []
        self._task: asyncio.Task | None = None
        self._opened = asyncio.Event()
        self._sending = TaskSet(self)  # frames on their way out
        # Awaited before every connect attempt (the Device renews an expired token there).
        self.before_connect: Callable[[], Awaitable[None]] | None = None

    # --- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None and self.state is not SignalingState.CLOSED:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="signaling")

    async def wait_open(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._opened.wait(), timeout)

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

    def set_token(self, token: str) -> None:
        """Use a new token: sent at once as ``listen`` when connected, else on the next open."""
        self.token = token
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

    def _listen(self) -> None:
        payload = {"browserinfo": self.browserinfo, "reconnectTimeout": 0, "token": self.token}
        self._sending.spawn(self._send_text(protocol.encode("listen", **payload)))

    # --- the connection loop -------------------------------------------------------------
    async def _run(self) -> None:
        while self.state is not SignalingState.CLOSED:
            self._set_state(SignalingState.CONNECTING)
            opened_at = None
            try:
                if self.before_connect is not None:
                    await self.before_connect()
                async with connect(
                    self.url,
                    ssl=self._ssl,
                    open_timeout=self.connect_timeout,
                    ping_interval=None,  # liveness is the protocol's heartbeat
                    max_size=4 * protocol.MAX_FRAME_BYTES,
                    close_timeout=1,
                ) as ws:
                    opened_at = time.monotonic()
                    self._ws = ws
                    self._set_state(SignalingState.CONNECTED)
                    self._listen()
                    queued, self._queue = self._queue, []
                    for type_, payload in queued:
                        self.send(type_, payload)
                    self._opened.set()
                    self.emit("open")
                    await self._read(ws)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                log.warning("signaling connection to %s failed: %s", self.url, exc)
            finally:
                self._ws = None
                self._opened.clear()
            if self.state is SignalingState.CLOSED:
                break
            was_open = opened_at is not None
            self._set_state(SignalingState.DISCONNECTED)
            if was_open:
                self.emit("close")
                if time.monotonic() - opened_at > self.STABLE_AFTER:
                    self.backoff.reset()
            delay = self.backoff.next()
            log.info("signaling reconnects in %.2f s", delay)
            await asyncio.sleep(delay)

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


