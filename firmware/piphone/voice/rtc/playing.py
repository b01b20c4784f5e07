"""Playing a sound into one of the exchange's media sessions, below the port: the ringback a
party hears while a transfer rings its new destination (exchange/transfers.py).

From ``start`` the session's ``Outbox`` sends what is pushed (``decode_from``), re-encoded on
its own paced clock (forwarding.py); the player pushes the source's 20 ms frames as the source
paces them, as the conference's mixer pushes its mix (mixing.py). ``stop`` ends the pushing;
whoever bridges the session next (the bridge's join) switches the Outbox to what it sends then.
"""

from __future__ import annotations

import asyncio
import logging

from ...pcm import EndOfStream, PcmSource
from .forwarding import Outbox

log = logging.getLogger(__name__)


class Player:
    def __init__(self, source: PcmSource, outbox: Outbox) -> None:
        self._source = source
        self._outbox = outbox
        self._task: asyncio.Task[None] | None = None
        self.played = 0  # frames pushed (for tests and logs)

    def start(self) -> None:
        """The Outbox sends the source's audio from now on."""
        self._outbox.decode_from()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while True:
                self._outbox.push(await self._source.read())
                self.played += 1
        except EndOfStream:
            pass
        except Exception:  # the sound is lost, not the call: the Outbox sends silence
            log.exception("a sound for a leg could not be played")

    def stop(self) -> None:
        """No more pushing (idempotent)."""
        self._source.stop()
        if self._task is not None:
            self._task.cancel()
            self._task = None
