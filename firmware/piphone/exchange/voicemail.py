"""Voicemail at the exchange: a call to an identity that nobody answers is recorded.

With ``[voicemail] enabled``, a call to an identity goes to its mailbox instead of ending
when: it rings ``ring_timeout`` seconds unanswered, the callee rejects it (as a desk phone's
reject button sends a caller to voicemail), and (``when_busy`` / ``when_offline``) every
device is busy or none is registered. The exchange then answers the caller itself: a beep
(generated here), then the caller's audio, decoded by the media port into a ``Recording``
(mailbox.py), for at most ``max_seconds`` (then the caller is hung up). When the call ends the
recording becomes a message, and every registered device of the mailbox's owner is told with
a ``voicemail`` frame (piphone's extension of the protocol, voice/protocol.py): how many
messages, how many unheard, and where to fetch them (mailbox_http.py). A full mailbox, or one
over ``max_mailboxes``, takes nothing: the call ends as it would without voicemail.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable

import numpy as np

from ..pcm import SAMPLE_RATE, SAMPLES_PER_FRAME, Pacer, Samples
from .legs import ExchangeCall, Phase
from .lifetime import CallBook
from .mailbox import Mailboxes, Recording
from .routing import Route
from .voicemail_settings import VoicemailSettings

log = logging.getLogger(__name__)

BEEP_HZ = 1400.0  # the greeting: one beep, then the caller speaks
BEEP_SECONDS = 0.5


def beep() -> Samples:
    """The greeting beep, 48 kHz, faded in and out (no click)."""
    n = np.arange(int(SAMPLE_RATE * BEEP_SECONDS))
    envelope = np.minimum(1.0, np.minimum(n, n[::-1]) / (0.01 * SAMPLE_RATE))
    wave = 32767 * 10 ** (-12 / 20) * envelope * np.sin(2 * math.pi * BEEP_HZ / SAMPLE_RATE * n)
    return wave.astype(np.int16)


class Voicemail:
    """Diverts unanswered calls to their mailbox and records them. ``answer_caller`` and
    ``ring_caller`` are the placer's (placing.py); ``notify(identity)`` tells the owner's
    devices (server.py wires it to the sessions)."""

    def __init__(self, settings: VoicemailSettings, book: CallBook,
                 answer_caller: Callable[[ExchangeCall], Awaitable[bool]],
                 ring_caller: Callable[[ExchangeCall], None]) -> None:
        self.settings = settings
        self.book = book
        self.mailboxes = Mailboxes(settings) if settings.enabled else None
        self._answer_caller = answer_caller
        self._ring_caller = ring_caller
        self.notify: Callable[[str], None] = lambda identity: None
        self.diverted: set[ExchangeCall] = set()  # calls being recorded (or about to be)

    def ring_timeout(self, route: Route) -> float | None:
        """How long a call on ``route`` rings before voicemail takes it (None: no voicemail)."""
        return self.settings.ring_timeout if self._applies(route) else None

    def accepts(self, route: Route, why: str) -> bool:
        """Whether a call on ``route`` would go to voicemail for ``why`` ("no-answer",
        "rejected", "busy", "offline")."""
        if not self._applies(route) or (why == "busy" and not self.settings.when_busy) or \
                (why == "offline" and not self.settings.when_offline):
            return False
        assert self.mailboxes is not None
        try:
            return self.mailboxes.can_take(route.target, recording=len(self.diverted))
        except OSError as exc:
            log.error("voicemail: cannot read the mailboxes: %s", exc)
            return False

    def _applies(self, route: Route) -> bool:
        return self.mailboxes is not None and route.kind == "client"

    def divert(self, call: ExchangeCall, why: str) -> bool:
        """Send the call to voicemail now (its devices stop ringing); False if it does not
        go there (the caller is then ended as before)."""
        if call in self.diverted or call.phase not in (Phase.SETUP, Phase.RINGING) \
                or call.caller is None or not self.accepts(call.route, why):
            return False
        self.diverted.add(call)
        call.on_end.append(lambda: self.diverted.discard(call))  # however early it ends
        for fork in call.forks:
            fork.send("cancel", callsid=fork.sid)
            self.book.drop(fork)
        call.forks = []
        call.stop_ringback()  # a transferred caller's: the beep is next
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        log.info("call %s: to voicemail (%s)", call.sid, why)
        call.work.spawn(self._record(call))
        return True

    async def _record(self, call: ExchangeCall) -> None:
        caller = call.caller
        assert caller is not None and self.mailboxes is not None
        owner = call.route.target
        try:
            recording = self.mailboxes.record(owner)
        except OSError as exc:
            log.error("voicemail: cannot record for a mailbox: %s", exc)
            self.diverted.discard(call)
            self.book.end(call, caller_error=(31480, "no answer"))
            return
        call.on_end.append(lambda: self._keep(call, owner, recording,
                                              f"client:{caller.identity}"))
        if call.phase is Phase.SETUP:  # no device was rung: the caller learns the CallSid now
            call.phase = Phase.RINGING
            self._ring_caller(call)
        if not await self._answer_caller(call):
            return
        if call.timer is not None:  # the message's length, not the call's, bounds it now
            call.timer.cancel()
        call.timer = asyncio.get_running_loop().call_later(
            BEEP_SECONDS + self.settings.max_seconds + 1.0, self._cut, call)
        leg = caller.media.leg
        try:
            await leg.media.wait_connected(self.book.limits.media_timeout)
        except Exception:  # the call's media check ends it
            return
        pacer = Pacer()
        tone = beep()
        for start in range(0, len(tone), SAMPLES_PER_FRAME):
            await pacer.tick()
            leg.outbox.push(tone[start:start + SAMPLES_PER_FRAME])
        await pacer.tick()
        leg.connect_to(recording)  # the media port decodes the caller's audio into it

    def _cut(self, call: ExchangeCall) -> None:
        log.info("call %s: the message reached %.0f s", call.sid, self.settings.max_seconds)
        self.book.end(call, completed=True)

    def _keep(self, call: ExchangeCall, owner: str, recording: Recording, caller: str) -> None:
        """The call ended: file the message and tell the owner's devices."""
        self.diverted.discard(call)
        assert self.mailboxes is not None
        try:
            message = self.mailboxes.keep(owner, recording, caller)
        except OSError as exc:
            log.error("voicemail: cannot keep a message: %s", exc)
            return
        if message is not None:
            self.notify(owner)

    def notice(self, identity: str) -> dict[str, int] | None:
        """The ``voicemail`` frame's counts for ``identity`` (None: voicemail is off)."""
        if self.mailboxes is None:
            return None
        try:
            messages, unheard = self.mailboxes.counts(identity)
        except OSError as exc:
            log.error("voicemail: cannot read a mailbox: %s", exc)
            return None
        return {"messages": messages, "unheard": unheard}
