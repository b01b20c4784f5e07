"""A client of the local exchange's voicemail (piphone's extension; Twilio keeps recordings in its
REST API instead): the mailbox's messages over HTTP, with the Device's access token.

The exchange names the URL in its ``voicemail`` frame (protocol.py), which the Device emits as
``voicemail(payload)``. ``list()`` gives the messages newest first, ``audio(sid)`` one as 48 kHz
mono PCM, ``heard(sid)`` marks it heard (played to the end), ``delete(sid)`` removes it.
Everything the server sends is checked: JSON of the expected shape, a WAV of 16-bit mono PCM, at
most MAX_AUDIO_BYTES.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import ssl
import wave
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import PiphoneError
from ..logsafe import text
from ..pcm import SAMPLE_RATE, Samples
from . import tls

MAX_AUDIO_BYTES = 48 * 1024 * 1024  # ten minutes of 16 kHz at most, with room
MAX_LIST_BYTES = 1024 * 1024
TIMEOUT = 15.0  # seconds for one request


class VoicemailError(PiphoneError, OSError):
    """The mailbox could not be read or changed (the message says why)."""


@dataclass(frozen=True)
class VoicemailMessage:
    sid: str
    caller: str
    received: float  # seconds since the epoch
    seconds: float
    heard: bool


class MailboxClient:
    """``url``: the mailbox's (the last ``voicemail`` frame's); ``token`` and ``ssl_context``:
    the Device's."""

    def __init__(self, token: Callable[[], str],
                 ssl_context: Callable[[], ssl.SSLContext | None] = lambda: None) -> None:
        self.url: str | None = None
        self._token = token
        self._ssl = ssl_context

    async def list(self) -> list[VoicemailMessage]:
        body = await self._request("GET", "", MAX_LIST_BYTES)
        try:
            import json

            items = json.loads(body)["messages"]
            messages = [VoicemailMessage(sid=str(m["sid"])[:64], caller=str(m["from"])[:128],
                                         received=float(m["received"]),
                                         seconds=float(m["seconds"]), heard=bool(m["heard"]))
                        for m in items]
        except (ValueError, KeyError, TypeError) as exc:
            raise VoicemailError(f"the mailbox's list is malformed: {text(exc)}") from None
        return sorted(messages, key=lambda m: m.received, reverse=True)

    async def audio(self, sid: str) -> Samples:
        """The message's audio as 48 kHz mono int16."""
        return wav_samples(await self._request("GET", f"/{sid}", MAX_AUDIO_BYTES))

    async def heard(self, sid: str) -> None:
        await self._request("POST", f"/{sid}", MAX_LIST_BYTES, "/Heard")

    async def delete(self, sid: str) -> None:
        await self._request("DELETE", f"/{sid}", MAX_LIST_BYTES)

    async def _request(self, method: str, path: str, limit: int, then: str = "") -> bytes:
        if not self.url:
            raise VoicemailError("no mailbox: the exchange has not named one")
        if path and not path[1:].isalnum():
            raise VoicemailError(f"not a message id: {text(path[1:], 64)}")
        url = self.url + path + then
        # Imported when first used, in a thread (see insights.py: its size would stall audio).
        aiohttp: Any = await asyncio.to_thread(importlib.import_module, "aiohttp")
        context: ssl.SSLContext | bool | None = self._ssl()
        if context is None and tls.is_secure(url):
            context = await asyncio.to_thread(tls.client_context)
        context = context if tls.is_secure(url) else False
        try:
            async with aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as session, \
                    session.request(method, url, headers={"X-Twilio-Token": self._token()},
                                    ssl=context) as response:
                body = await response.content.read(limit + 1)
                if len(body) > limit:
                    raise VoicemailError(f"the answer is over {limit} bytes")
                if response.status != 200:
                    raise VoicemailError(f"the mailbox answered HTTP {response.status}: "
                                         f"{text(body[:200].decode(errors='replace'))}")
                return bytes(body)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            if isinstance(exc, VoicemailError):
                raise
            raise VoicemailError(f"cannot reach the mailbox: {text(exc) or type(exc).__name__}"
                                 ) from None


def wav_samples(data: bytes) -> Samples:
    """A WAV file of 16-bit mono PCM -> 48 kHz int16 (linear interpolation)."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
                raise VoicemailError("a message must be 16-bit mono")
            rate = wav.getframerate()
            raw = np.frombuffer(wav.readframes(wav.getnframes()), "<i2")
    except (wave.Error, EOFError) as exc:
        raise VoicemailError(f"a message is not a WAV file: {text(exc)}") from None
    if not 8000 <= rate <= SAMPLE_RATE:
        raise VoicemailError(f"a message at {rate} Hz")
    if rate == SAMPLE_RATE or len(raw) == 0:
        return raw.astype(np.int16)
    times = np.arange(int(len(raw) * SAMPLE_RATE / rate)) * (rate / SAMPLE_RATE)
    resampled: Samples = np.interp(times, np.arange(len(raw)),
                                   raw.astype(np.float64)).astype(np.int16)
    return resampled
