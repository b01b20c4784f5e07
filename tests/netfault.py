"""Network faults between a Device and the exchange, on 127.0.0.1 only.

``SignalingProxy`` stands between the Device and the exchange's WebSocket: it can cut every
connection (a network drop: transports aborted, no close handshake) and refuse new ones until
restored. It also rewrites the ICE candidates of every SDP it forwards so that each side sees
the other at an address of ``MediaRelay``; all media then goes through the relay, which drops,
delays, jitters or black-holes packets per direction. ``tc netem`` is not available on these
kernels (TESTING.md), hence a relay in the test.

The relay works like a NAT with a fixed mapping: every real media endpoint E that appears in an
SDP gets a front socket F(E). A packet that arrives at F(E) from S is sent on to E from F(S),
so E sees it come from the very address the SDP told it about.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
from dataclasses import dataclass
from http import HTTPStatus

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, WebSocketException

log = logging.getLogger(__name__)

Address = tuple[str, int]
CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ udp \d+ )(\S+) (\d+)( typ .*)$", re.I | re.M)
MEDIA_LINE = re.compile(r"^(m=audio )(\d+)( .*)$", re.M)


@dataclass
class Faults:
    """What happens to packets in one direction, and what happened so far."""

    loss: float = 0.0  # fraction dropped, drawn from a seeded generator (repeatable)
    delay: float = 0.0  # seconds added to every packet
    jitter: float = 0.0  # seconds of extra uniform random delay (reorders packets)
    blackhole: bool = False  # drop everything
    seed: int = 1
    forwarded: int = 0
    dropped: int = 0
    bytes_forwarded: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def verdict(self) -> float | None:
        """Seconds to hold the packet, or None to drop it (and count it)."""
        if self.blackhole or (self.loss and self._random.random() < self.loss):
            self.dropped += 1
            return None
        hold = self.delay + (self._random.uniform(0, self.jitter) if self.jitter else 0.0)
        return hold

    def reset_counters(self) -> None:
        self.forwarded = self.dropped = self.bytes_forwarded = 0


class _Front(asyncio.DatagramProtocol):
    def __init__(self, relay: MediaRelay, target: Address) -> None:
        self.relay = relay
        self.target = target
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, source: Address) -> None:
        self.relay._pass(self, data, source)

    @property
    def address(self) -> Address:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[:2]


class MediaRelay:
    """UDP relay on 127.0.0.1 with per-direction faults (``to_client``, ``to_exchange``)."""

    def __init__(self) -> None:
        self.to_client = Faults(seed=1)
        self.to_exchange = Faults(seed=2)
        self.unknown = 0  # packets from an address no SDP announced (dropped)
        self._fronts: dict[Address, _Front] = {}
        self._client_side: set[Address] = set()
        self._closed = False

    def set(self, **faults) -> None:
        """Set the same fault attributes in both directions."""
        for direction in (self.to_client, self.to_exchange):
            for name, value in faults.items():
                if not hasattr(direction, name):
                    raise AttributeError(f"Faults has no attribute {name!r}")
                setattr(direction, name, value)

    async def front(self, endpoint: Address, client_side: bool) -> Address:
        """The relay address standing for ``endpoint`` (made on first sight)."""
        if endpoint not in self._fronts:
            loop = asyncio.get_running_loop()
            _, front = await loop.create_datagram_endpoint(
                lambda: _Front(self, endpoint), local_addr=("127.0.0.1", 0))
            self._fronts[endpoint] = front
        if client_side:
            self._client_side.add(endpoint)
        return self._fronts[endpoint].address

    def _pass(self, front: _Front, data: bytes, source: Address) -> None:
        back = self._fronts.get(source[:2])
        if back is None or back.transport is None or self._closed:
            self.unknown += 1
            return
        faults = self.to_client if front.target in self._client_side else self.to_exchange
        hold = faults.verdict()
        if hold is None:
            return
        faults.forwarded += 1
        faults.bytes_forwarded += len(data)
        if hold > 0:
            asyncio.get_running_loop().call_later(hold, self._send, back, data, front.target)
        else:
            back.transport.sendto(data, front.target)

    def _send(self, back: _Front, data: bytes, target: Address) -> None:
        if not self._closed and back.transport is not None:
            back.transport.sendto(data, target)

    async def rewrite_sdp(self, sdp: str, client_side: bool) -> str:
        """Replace every UDP candidate address (and the m-line port) by its front."""
        replaced: dict[Address, Address] = {}
        for match in CANDIDATE.finditer(sdp):
            endpoint = (match.group(2), int(match.group(3)))
            replaced[endpoint] = await self.front(endpoint, client_side)

        def candidate(match: re.Match) -> str:
            host, port = replaced[(match.group(2), int(match.group(3)))]
            return f"{match.group(1)}{host} {port}{match.group(4)}"

        ports = {str(e[1]): str(f[1]) for e, f in replaced.items()}
        sdp = CANDIDATE.sub(candidate, sdp)
        return MEDIA_LINE.sub(
            lambda m: f"{m.group(1)}{ports.get(m.group(2), m.group(2))}{m.group(3)}", sdp)

    def close(self) -> None:
        self._closed = True
        for front in self._fronts.values():
            if front.transport is not None:
                front.transport.close()
        self._fronts.clear()


class SignalingProxy:
    """A WebSocket proxy in front of the exchange that can drop and refuse connections."""

    def __init__(self, upstream_url: str) -> None:
        self.upstream_url = upstream_url
        self.media = MediaRelay()
        self.url = ""
        self.blocked = False
        self.connections = 0  # accepted client connections so far
        # (direction "up" to the exchange or "down" to the client, type, payload) of every
        # frame passed, in order
        self.frames: list[tuple[str, str, dict]] = []
        self._server = None
        self._pairs: set[tuple[ServerConnection, object]] = set()
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> SignalingProxy:
        self._server = await serve(self._handle, "127.0.0.1", 0,
                                   process_request=self._admit, max_size=None)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/signal"
        return self

    def _admit(self, connection, request):
        if self.blocked:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "network down\n")
        return None

    async def _handle(self, client: ServerConnection) -> None:
        path = client.request.path if client.request is not None else "/signal"
        query = path.partition("?")[2]
        target = self.upstream_url + (("&" if "?" in self.upstream_url else "?") + query
                                      if query else "")
        try:
            upstream = await connect(target, max_size=None, open_timeout=5)
        except (OSError, TimeoutError, WebSocketException) as exc:
            log.info("proxy: upstream unreachable (%s); dropping the client", exc)
            _abort(client)
            return
        self.connections += 1
        pair = (client, upstream)
        self._pairs.add(pair)
        try:
            up = asyncio.ensure_future(self._pump(client, upstream, client_side=True))
            down = asyncio.ensure_future(self._pump(upstream, client, client_side=False))
            self._tasks.update((up, down))
            await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            self._tasks.difference_update((up, down))
        finally:
            self._pairs.discard(pair)
            _abort(client)
            _abort(upstream)

    async def _pump(self, source, sink, *, client_side: bool) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in source:
                if isinstance(message, str):
                    message = await self._rewrite(message, client_side)
                    self._note("up" if client_side else "down", message)
                await sink.send(message)

    async def _rewrite(self, text: str, client_side: bool) -> str:
        if '"sdp"' not in text:
            return text
        try:
            frame = json.loads(text)
            payload = frame["payload"]
            if not isinstance(payload.get("sdp"), str):
                return text
        except (ValueError, KeyError, TypeError, AttributeError):
            return text  # not ours to judge: the far end validates frames
        payload["sdp"] = await self.media.rewrite_sdp(payload["sdp"], client_side)
        return json.dumps(frame)

    def _note(self, direction: str, text: str) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            frame = json.loads(text)
            self.frames.append((direction, frame["type"], dict(frame["payload"])))

    async def cut(self) -> None:
        """Drop every current connection, as a network failure would (no close frames)."""
        for client, upstream in list(self._pairs):
            _abort(client)
            _abort(upstream)
        await asyncio.sleep(0)

    def block(self) -> None:
        """Refuse new connections and drop the current ones until ``restore()``."""
        self.blocked = True
        for client, upstream in list(self._pairs):
            _abort(client)
            _abort(upstream)

    def restore(self) -> None:
        self.blocked = False

    async def close(self) -> None:
        self.block()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.media.close()


def _abort(connection) -> None:
    transport = getattr(connection, "transport", None)
    if transport is not None:
        transport.abort()
