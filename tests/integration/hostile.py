"""A hostile client for the exchange: a valid token of its own, a hand-driven WebSocket that
sends exactly what it is told (reused CallSids, someone else's reconnect token, bursts), and
real aiortc offers on 127.0.0.1 when it needs media that the exchange can answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator

from websockets.asyncio.client import connect

from piphone.pcm import Tone
from piphone.voice import protocol
from piphone.voice.rtc import MediaSession, MediaSettings
from piphone.voice.tokens import mint

from ..conftest import LOOPBACK

CLIENT_MEDIA = MediaSettings(ice_addresses=LOOPBACK)


class Hostile:
    """One socket with a listen done; every frame the exchange sent is kept in ``frames``."""

    def __init__(self, ws, identity: str) -> None:
        self.ws = ws
        self.identity = identity
        self.frames: list[dict] = []
        self.media: list[MediaSession] = []
        self._arrived = asyncio.Event()
        self._replies = 0  # answer/error/hangup frames reply() returned so far
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for text in self.ws:
                if text != protocol.HEARTBEAT:
                    self.frames.append(json.loads(text))
                    self._arrived.set()

    async def send(self, type_: str, **payload) -> None:
        await self.ws.send(protocol.encode(type_, **payload))

    def got(self, type_: str, callsid: str | None = None) -> list[dict]:
        """Payloads of the frames of ``type_`` received so far (for ``callsid`` if given)."""
        return [f["payload"] for f in self.frames if f["type"] == type_
                and (callsid is None or f["payload"].get("callsid") == callsid)]

    async def expect(self, type_: str, callsid: str | None = None, timeout: float = 3.0,
                     count: int = 1) -> dict:
        """The ``count``-th frame of ``type_`` (for ``callsid``), waiting at most ``timeout``."""

        async def arrived() -> dict:
            while len(self.got(type_, callsid)) < count:
                self._arrived.clear()
                await self._arrived.wait()
            return self.got(type_, callsid)[count - 1]

        try:
            return await asyncio.wait_for(arrived(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.identity}: no {type_} #{count} for {callsid} within "
                                 f"{timeout} s; got {[f['type'] for f in self.frames]}") from None

    async def reply(self, timeout: float = 3.0) -> dict:
        """The exchange's next word on an invite: an answer (it took the call; the answer names
        the new CallSid), or an error or hangup (it refused); the whole frame."""

        def replies() -> list[dict]:
            return [f for f in self.frames if f["type"] in ("answer", "error", "hangup")]

        async def arrived() -> dict:
            while len(replies()) <= self._replies:
                self._arrived.clear()
                await self._arrived.wait()
            self._replies += 1
            return replies()[self._replies - 1]

        try:
            return await asyncio.wait_for(arrived(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.identity}: no reply within {timeout} s; got "
                                 f"{[f['type'] for f in self.frames]}") from None

    async def offer(self) -> tuple[MediaSession, str]:
        """A client media session and its offer (real ICE candidates on 127.0.0.1)."""
        media = MediaSession(CLIENT_MEDIA, Tone(440))
        self.media.append(media)
        return media, await media.offer()

    async def answer(self, invite: dict) -> MediaSession:
        """Answer an incoming invite with a real answer; its media session."""
        media = MediaSession(CLIENT_MEDIA, Tone(660))
        self.media.append(media)
        await media.prepare_answer(invite["sdp"])
        await self.send("answer", callsid=invite["callsid"], sdp=await media.answer())
        return media

    async def invite(self, callsid: str, to: str = "echo", sdp: str | None = None,
                     **extra) -> MediaSession | None:
        """Place a call (its own offer unless ``sdp`` is given); the media session if any."""
        media = None
        if sdp is None:
            media, sdp = await self.offer()
        await self.send("invite", callsid=callsid, sdp=sdp, preflight=False,
                        twilio={"params": f"To={to}"}, **extra)
        return media

    async def answered_call(self, callsid: str, to: str = "echo") -> tuple[str, MediaSession]:
        """Place a call, take the answer and connect its media: (CallSid, media)."""
        media = await self.invite(callsid, to)
        assert media is not None
        reply = await self.reply()
        assert reply["type"] == "answer", reply
        answer = reply["payload"]
        await media.apply_answer(answer["sdp"])
        await media.wait_connected(5)
        return answer["callsid"], media

    async def register(self) -> None:
        await self.send("register", media={"audio": True})
        await self.expect("ready")

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        for media in self.media:
            await media.close()


@contextlib.asynccontextmanager
async def hostile_clients(exchange) -> AsyncIterator:
    """Yields ``open_``: ``await open_("mallory")`` is a Hostile with a valid token for that
    identity; every one is closed on the way out (a test module's ``hostile`` fixture)."""
    clients: list[Hostile] = []

    async def open_(identity: str = "mallory") -> Hostile:
        ws = await connect(exchange.url, open_timeout=2, max_size=None)
        client = Hostile(ws, identity)
        clients.append(client)
        token = mint(identity=identity, ttl=600, **exchange.config.token_kwargs())
        await client.send("listen", token=token)
        await client.expect("connected")
        return client

    try:
        yield open_
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()


def temp_id() -> str:
    """A call id of the kind a client makes up (the SDK's TJS... temporary ids)."""
    return f"TJS{uuid.uuid4()}"
