"""A fresh access token before the signaling stream reconnects.

A phone that was cut off for a while may come back with an expired token; the server would
refuse its ``listen`` and the calls waiting to resume would be lost. Before each connect
attempt, a token that has expired (or expires within ``margin`` seconds) is replaced: from
the Device's ``token_source`` (an async callable returning a new token), or else by asking
the application once per token with ``tokenWillExpire`` (its handler calls
``update_token``). A token that is still refused is the server's clear error (20104/20101),
not a loop: we ask once per token, and the Device ends the calls that waited for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from . import tokens
from .errors import TwilioError
from .tasks import first_set

if TYPE_CHECKING:
    from .device import Device

log = logging.getLogger(__name__)

TokenSource = Callable[[], Awaitable[str]]


class TokenRefresher:
    def __init__(self, device: Device, source: TokenSource | None, *, margin: float = 10.0,
                 wait: float = 5.0) -> None:
        self.device = device
        self.source = source
        self.margin = margin  # seconds of validity below which a token is renewed first
        self.wait = wait  # seconds given to the source or the tokenWillExpire handlers
        self.updated = asyncio.Event()  # set by Device.update_token
        self._asked_for: str | None = None  # the token tokenWillExpire was emitted for
        self.armed = False  # set once the stream was connected: only reconnects renew

    def needs_refresh(self) -> bool:
        left = tokens.read(self.device.token).seconds_left()
        return left is not None and left <= self.margin

    async def before_connect(self) -> None:
        """Awaited by the stream before each connect attempt."""
        if not self.armed or not self.needs_refresh():
            return
        token = self.device.token
        if self.source is not None:
            await self._from_source()
        elif self._asked_for != token:
            self._asked_for = token
            self.updated.clear()
            log.info("token expired while disconnected: asking for a new one")
            self.device.emit("tokenWillExpire", self.device)
            if self.device.token == token and self.device.listeners("tokenWillExpire"):
                # a coroutine handler may still be at work
                await first_set((self.updated,), self.wait)

    async def _from_source(self) -> None:
        assert self.source is not None
        try:
            async with asyncio.timeout(self.wait):
                token = await self.source()
            self.device.update_token(token)
        except Exception as exc:  # the application's callable: any failure is reported
            log.warning("token_source failed: %s", exc)
            error = exc if isinstance(exc, TwilioError) else TwilioError(
                20104, f"the token expired and token_source failed: {exc}", original_error=exc)
            self.device.emit("error", error, None)
            return
        log.info("token renewed from token_source before reconnecting")
