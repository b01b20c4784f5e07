"""Calls and their legs at the exchange, and how a client's frames find them.

A call has a parent leg (the caller, CallSid ``CA...``) and, while it rings, one child leg per
registered device of the callee's identity (a fork, each with its own CallSid). Legs are keyed
by these ids, which are the exchange's own, never by an id a client chose: a caller's temporary
id (``TJS...``) names its leg only within the session that sent the invite. A client that files
a call under someone else's id thus files a call of its own and touches nothing else, and a
session finds only its own legs (a leg cut off from its socket: by its identity, to hang up).

The call layer knows a client's session only as a ``Party`` (defined here): it sends the party
frames, and reads who it is and what its token allows.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..voice.quality import Counters
from ..voice.rtc import Mixer, Player
from ..voice.tasks import TaskSet
from .auth import Grant
from .media import LegMedia
from .routing import Route


class Party(Protocol):
    """A client's signaling session as the call layer sees it (session.py's ClientSession).
    Its ``str()`` names it in logs: escaped and bounded."""

    @property
    def identity(self) -> str | None:
        """Who it is (its token's identity); None before a valid token."""

    @property
    def grant(self) -> Grant | None:
        """What its token allows."""

    def send(self, type_: str, **payload: Any) -> None:
        """Queue a frame to the client (a closed socket drops it)."""


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


class Phase(enum.Enum):
    SETUP = "setup"
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


@dataclass(eq=False)
class CallLeg:
    """One party's side of a call: its signaling session and its media at the exchange."""

    call: ExchangeCall
    session: Party | None
    id: str  # the exchange's id of the leg: the call's CallSid (caller) or a child CallSid
    media: LegMedia  # a reinvite replaces it
    temp_id: str | None = None  # the caller's temporary id: meaningful to its session only
    sid: str = ""  # the id frames to the party carry: a caller's temporary id until it rings
    reconnect_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    identity: str | None = None  # of the party: it may hang up or resume from a new socket
    grace_timer: asyncio.TimerHandle | None = None  # while cut off from its socket
    media_timer: asyncio.TimerHandle | None = None  # until its media connects
    restarting: bool = False  # a reinvite is being answered (restarts.py)
    reinvites: collections.deque[float] = field(default_factory=collections.deque)  # times

    def __post_init__(self) -> None:
        if self.session is not None:
            self.identity = self.session.identity
        self.sid = self.sid or self.temp_id or self.id

    def send(self, type_: str, **payload: Any) -> None:
        if self.session is not None:
            self.session.send(type_, **payload)

    async def media_counters(self) -> Counters:
        """The counters of the leg's current media (a reinvite replaces it: they restart)."""
        return await self.media.counters()


@dataclass(eq=False)
class ExchangeCall:
    sid: str
    route: Route
    caller: CallLeg | None = None
    forks: list[CallLeg] = field(default_factory=list)
    callee: CallLeg | None = None  # the fork that answered (None for a line)
    phase: Phase = Phase.SETUP
    timer: asyncio.TimerHandle | None = None  # ring timeout, then maximum call length
    digits: TaskSet = field(default_factory=lambda: TaskSet("digit relay"))
    work: TaskSet = field(default_factory=lambda: TaskSet("call set-up"))  # ends with the call
    transferred: bool = False  # its caller was transferred here, answered (transfers.py)
    guests: list[CallLeg] = field(default_factory=list)  # a conference's third party
    mixer: Mixer | None = None  # a conference's audio (conference.py)
    ringback: Player | None = None  # what its caller hears while a transfer rings
    on_end: list[Callable[[], None]] = field(default_factory=list)  # voicemail's message

    def stop_ringback(self) -> None:
        """The caller no longer hears ringback (the call is answered or ends)."""
        if self.ringback is not None:
            self.ringback.stop()
            self.ringback = None

    def other(self, leg: CallLeg) -> CallLeg | None:
        return self.callee if leg is self.caller else self.caller

    def parties(self) -> list[CallLeg]:
        """Who talks in it: the caller, the callee and, in a conference, its guest."""
        return [leg for leg in (self.caller, self.callee) if leg is not None] + self.guests

    def legs(self) -> list[CallLeg]:
        """Every leg the call holds: its parties and the forks still ringing."""
        legs = self.parties()
        return legs + [fork for fork in self.forks if fork not in legs]

    def is_party(self, identity: str | None) -> bool:
        """Whether ``identity`` places the call or talks in it (ringing does not count)."""
        return any(leg.identity == identity for leg in self.parties())


class LegIndex:
    """The live legs by the exchange's ids, by reconnect token, and by session: each session
    has its own table of the ids it may use (its legs' exchange ids and temporary ids)."""

    def __init__(self) -> None:
        self._by_id: dict[str, CallLeg] = {}
        self._by_token: dict[str, CallLeg] = {}
        self._by_session: dict[Party, dict[str, CallLeg]] = {}

    def add(self, leg: CallLeg) -> None:
        self._by_id[leg.id] = leg
        self._by_token[leg.reconnect_token] = leg
        if leg.session is not None:
            self.attach(leg, leg.session)

    def remove(self, leg: CallLeg) -> None:
        if self._by_id.get(leg.id) is leg:
            del self._by_id[leg.id]
        if self._by_token.get(leg.reconnect_token) is leg:
            del self._by_token[leg.reconnect_token]
        self.detach(leg)

    def attach(self, leg: CallLeg, session: Party) -> None:
        """``session`` now speaks for ``leg`` (placed or resumed it)."""
        leg.session = session
        names = self._by_session.setdefault(session, {})
        for name in (leg.id, leg.temp_id):
            if name is not None:
                names[name] = leg

    def detach(self, leg: CallLeg) -> None:
        """The leg's session no longer speaks for it (its socket closed, or the leg ended)."""
        session, leg.session = leg.session, None
        names = self._by_session.get(session) if session is not None else None
        if session is not None and names is not None:
            for name in [n for n, held in names.items() if held is leg]:
                del names[name]
            if not names:
                del self._by_session[session]

    def find(self, session: Party, callsid: str) -> CallLeg | None:
        """The leg ``session`` means by ``callsid``: only ever one of its own."""
        return self._by_session.get(session, {}).get(callsid)

    def in_use(self, session: Party, callsid: str) -> bool:
        return callsid in self._by_session.get(session, {})

    def cut_off(self, identity: str | None, callsid: str) -> CallLeg | None:
        """A leg of ``identity`` whose socket is gone (its party may hang up from a new one)."""
        leg = self._by_id.get(callsid)
        if leg is not None and leg.session is None and identity is not None \
                and leg.identity == identity:
            return leg
        return None

    def by_token(self, token: str) -> CallLeg | None:
        return self._by_token.get(token)

    def of(self, session: Party) -> list[CallLeg]:
        return list(dict.fromkeys(self._by_session.get(session, {}).values()))

    def __len__(self) -> int:
        return len(self._by_id)
