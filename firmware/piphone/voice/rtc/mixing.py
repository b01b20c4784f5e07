"""Mixing the exchange's media sessions for a conference (exchange/conference.py), below the
port.

Each member's session decodes what it receives (``MediaSession.decode_to``) into its own
``MixInput``: 48 kHz mono in 20 ms frames. Every 20 ms the mixer takes one frame from each
(silence from one that has none: late, lost, or saying nothing) and pushes to each member's
``Outbox`` the sum of the others' frames, clipped: each hears everyone but themselves. The
Outbox re-encodes it in that member's codec on its own paced clock (forwarding.py). Only the
conference's sessions are decoded and re-encoded; a two-party call keeps forwarding.

Written by hand, not with a library: the mix is a sum of a few numpy arrays, and what feeds it
and what it feeds are the sessions' own decode and encode paths.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Sequence

import numpy as np

from ...pcm import SAMPLES_PER_FRAME, Samples
from .forwarding import OUTBOX_FRAMES, Outbox
from .ports import LegMediaPort

log = logging.getLogger(__name__)

FRAME = 0.020  # seconds of audio in each mixed frame
LATE = 0.2  # a mixer this far behind its clock (a stalled loop) starts afresh, not in a burst


class MixInput:
    """What one member says, decoded, until the mixer takes it (a PcmTarget, which
    ``decode_to`` fills), bounded as an Outbox is (the oldest frame goes)."""

    def __init__(self, depth: int = OUTBOX_FRAMES) -> None:
        self._samples: collections.deque[Samples] = collections.deque(maxlen=depth)

    def push(self, samples: Samples) -> None:
        self._samples.append(samples)

    def take(self) -> Samples | None:
        return self._samples.popleft() if self._samples else None


class Mixer:
    """The audio of a conference's members: ``set_members`` (again, when one leaves or
    restarts its media), ``stop`` at the end."""

    def __init__(self) -> None:
        self._members: list[tuple[MixInput, Outbox]] = []
        self._task: asyncio.Task[None] | None = None
        self.mixed = 0  # frames mixed (for tests and logs)

    def set_members(self, members: Sequence[tuple[LegMediaPort, Outbox]]) -> None:
        """(session, what it sends) of each member: from now on each member's session is
        decoded for the mix, and its Outbox sends the mix of the others."""
        mixed: list[tuple[MixInput, Outbox]] = []
        for session, outbox in members:
            said = MixInput()
            session.decode_to(said)  # no longer forwarded anywhere
            outbox.decode_from()  # audio pushed, sent on its own clock from now on
            mixed.append((said, outbox))
        self._members = mixed
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def mix_once(self) -> None:
        said = [np.zeros(SAMPLES_PER_FRAME, np.int32) if frame is None
                else frame.astype(np.int32) for frame in (m.take() for m, _ in self._members)]
        total = np.sum(said, axis=0) if said else None
        for (_, outbox), own in zip(self._members, said, strict=True):
            assert total is not None
            outbox.push(np.clip(total - own, -32768, 32767).astype(np.int16))
        self.mixed += 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        tick = loop.time()
        while True:
            tick += FRAME
            await asyncio.sleep(max(0.0, tick - loop.time()))
            if loop.time() - tick > LATE:
                tick = loop.time()
            try:
                self.mix_once()
            except Exception:  # a frame that cannot be mixed must not end the conference
                log.exception("a conference frame could not be mixed")

    def stop(self) -> None:
        """No more mixing (the members' sessions are their legs', closed or bridged by them)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._members = []
