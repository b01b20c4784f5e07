"""The Device's token policy: a fresh access token before the signaling stream reconnects,
and ``tokenWillExpire`` ahead of expiry.

A phone that was cut off for a while may come back with an expired token; the server would
refuse its ``listen`` and the calls waiting to resume would be lost. Before each connect
attempt, a token that has expired (or expires within ``margin`` seconds) is replaced: from
the Device's ``token_source`` (an async callable returning a new token), or else by asking
the application once per token with ``tokenWillExpire`` (its handler calls
``update_token``). A token that is still refused is the server's clear error (20104/20101),
not a loop: we ask once per token, and the Device ends the calls that waited for it.

The Device holds the token; this reads it through ``token`` and hands a new one to ``update``
(Device.update_token), which tells it back with ``token_changed``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from . import tokens
from .errors import TwilioError
from .tasks import first_set

log = logging.getLogger(__name__)

TokenSource = Callable[[], Awaitable[str]]


class TokenRefresher:
    def __init__(self, *, token: Callable[[], str], update: Callable[[str], None],
                 ask: Callable[[], bool], report: Callable[[TwilioError], None],
                 source: TokenSource | None, margin: float = 10.0, wait: float = 5.0) -> None:
        self._token = token  # the Device's current token
        self._update = update  # Device.update_token
        self._ask = ask  # emits tokenWillExpire; False if nobody listens
        self._report = report  # an error event of the Device
        self.source = source
        self.margin = margin  # seconds of validity below which a token is renewed first
        self.wait = wait  # seconds given to the source or the tokenWillExpire handlers
        self._changed = asyncio.Event()  # set by token_changed
        self._asked_for: str | None = None  # the token tokenWillExpire was emitted for
        self._expiry_timer: asyncio.TimerHandle | None = None
        self.armed = False  # set once the stream was connected: only reconnects renew

    def token_changed(self) -> None:
        """The Device took a new token: a wait for one ends, and ``tokenWillExpire`` is due
        ``margin`` s before the new one expires, by its own ``exp`` (the server's ``ttl``
        refines it when it answers the new listen; a stream that is down does not)."""
        self._changed.set()
        if self.armed:
            self._arm(tokens.read(self._token()).seconds_left())

    def needs_refresh(self) -> bool:
        left = tokens.read(self._token()).seconds_left()
        return left is not None and left <= self.margin

    def connected(self, ttl: Any) -> None:
        """The server accepted the token (``connected``, with its ``ttl`` in seconds): from
        now on reconnects renew it, and ``tokenWillExpire`` goes out ``margin`` s before."""
        self.armed = True
        self._arm(ttl)

    def _arm(self, ttl: Any) -> None:
        """``tokenWillExpire`` ``margin`` s before ``ttl`` s from now (replacing any)."""
        self.cancel()
        if isinstance(ttl, int | float) and not isinstance(ttl, bool):
            self._expiry_timer = asyncio.get_running_loop().call_later(
                max(0.0, ttl - self.margin), self._ask)

    def cancel(self) -> None:
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
            self._expiry_timer = None

    async def before_connect(self) -> None:
        """Awaited by the stream before each connect attempt."""
        if not self.armed or not self.needs_refresh():
            return
        token = self._token()
        if self.source is not None:
            await self._from_source()
        elif self._asked_for != token:
            self._asked_for = token
            self._changed.clear()
            log.info("token expired while disconnected: asking for a new one")
            if self._ask() and self._token() == token:
                await first_set((self._changed,), self.wait)  # a coroutine handler at work

    async def _from_source(self) -> None:
        assert self.source is not None
        try:
            async with asyncio.timeout(self.wait):
                token = await self.source()
            self._update(token)
        except Exception as exc:  # the application's callable: any failure is reported
            log.warning("token_source failed: %s", exc)
            error = exc if isinstance(exc, TwilioError) else TwilioError(
                20104, f"the token expired and token_source failed: {exc}", original_error=exc)
            self._report(error)
            return
        log.info("token renewed from token_source before reconnecting")
