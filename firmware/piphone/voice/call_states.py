# ruff: noqa: E501
"""A call's states and the events that move it: the one table of voice/call.py.

The statuses are Twilio.Call's. Every change of a call goes through ``Call._fire(event)``,
which finds the first row of ``TRANSITIONS`` for the call's status and event whose conditions
hold, logs the step and then, in this order (the SDK's):

1. emits ``error`` if the row names it and the event carries one (a listener that ends the
   call right there ends it: the rest of the row is skipped);
2. does the row's step (``do``: a ``_name`` method of the Call: send a frame, swap media);
3. sets the status (entering ``closed`` tears the call down: reconnection stopped, media
   closed) and emits ``status`` if it changed;
4. emits the row's other events (``accept(call)``, ``cancel()``, ``disconnect(call)``,
   ``reject()``, ``ringing(has_early_media)``, ``reconnecting(error)``, ``reconnected()``).

An event with no row for the call's status is ignored (logged at debug): ``accept()`` on a call
that is not pending does nothing, as in the SDK.

What happens when media drops mid-call: no RTP for ``rtp_timeout`` seconds (the watchdog) or
ICE failed is ``media-lost``: the call closes the lost session, goes ``reconnecting`` and
emits ``reconnecting`` (53405); voice/reconnect.py then offers new sessions with ``reinvite``,
with backoff, and each one that connects is ``media-back`` (``reconnected``, unless the
signaling is still away) or, past ``give_up`` seconds, ``media-gave-up`` (``error`` 53405, a
hangup frame and ``disconnect``). The signaling side is the same with ``signaling-*`` rows.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import TwilioError
    from .rtc.ports import MediaPort


class CallStatus(enum.StrEnum):
    PENDING = "pending"  # incoming, not yet accepted
    CONNECTING = "connecting"  # accepted (incoming) or placed (outgoing); media on its way
    RINGING = "ringing"  # outgoing: the callee is being alerted
    OPEN = "open"  # media up
    RECONNECTING = "reconnecting"  # media and/or signaling lost, being restored
    CLOSED = "closed"


class CallEvent(enum.StrEnum):
    ACCEPT = "accept"  # accept() on an incoming call
    REJECT = "reject"  # reject()
    IGNORE = "ignore"  # ignore()
    CANCEL = "cancel"  # the server's cancel: the caller gave up before anyone answered
    RINGING = "ringing"  # the server's ringing for our invite
    ANSWER = "answer"  # the far end answered our invite, or we sent our answer
    MEDIA_CONNECTED = "media-connected"  # the call's first media session connected
    MEDIA_LOST = "media-lost"  # no RTP for rtp_timeout s, or ICE failed (reconnect.py)
    MEDIA_BACK = "media-back"  # a new media session connected (reconnect.py)
    MEDIA_GAVE_UP = "media-gave-up"  # none connected within give_up s (reconnect.py)
    SIGNALING_LOST = "signaling-lost"  # the Device's socket dropped
    SIGNALING_BACK = "signaling-back"  # the server answered our resume invite (reconnect.py)
    SIGNALING_GAVE_UP = "signaling-gave-up"  # no resume within signaling_give_up s
    TOKEN_REFUSED = "token-refused"  # the new socket refused our token: no resume
    HANGUP = "hangup"  # disconnect()
    REMOTE_HANGUP = "remote-hangup"  # the server's hangup
    ERROR = "error"  # the call cannot go on (its media could not be set up)


@dataclass(frozen=True)
class Facts:
    """What the conditions of a row may look at, besides the status."""

    outgoing: bool
    answered: bool  # the far end answered our invite, or we sent our answer
    has_token: bool  # a reconnect token (from the invite or the answer) to resume with
    media_lost: bool
    signaling_lost: bool


CONDITIONS: dict[str, Callable[[Facts], bool]] = {
    "outgoing": lambda f: f.outgoing,
    "answered": lambda f: f.answered,
    # the exchange keeps an answered call for its grace, and the token names it
    "resumable": lambda f: f.answered and f.has_token,
    "was_up": lambda f: f.answered or f.outgoing,  # the SDK's disconnect is for such calls
    "media_lost": lambda f: f.media_lost,
    "signaling_lost": lambda f: f.signaling_lost,
}

@dataclass(frozen=True)
class Trigger:
    """What came with an event: the table's steps and events use it."""

    error: TwilioError | None = None  # emitted as ``error``, or passed to ``reconnecting``
    media: MediaPort | None = None  # media-back: the new session
    sdp: str | None = None  # media-back: its offer (the call's local SDP from then on)
    token: str | None = None  # signaling-back: a new reconnect token
    early_media: bool = False  # ringing: the far end sent SDP


# Groups of statuses the table names.
GROUPS = {
    "SETTING_UP": "connecting ringing",
    "LIVE": "connecting ringing open reconnecting",  # what disconnect() hangs up
}

# Rows are tried in order: the first whose status ("from") and conditions ("when", names in
# CONDITIONS, all must hold, "!" negates one) match is taken. "to" "=": the status stays.
# "do": the Call's step (its method ``_<do>``). "emits": the SDK's events, in order.
# (Each row on one line, wider than the house's 100 columns: this file is exempt from E501.)
# event               from                            when                          to              do                emits
TRANSITIONS_TEXT: tuple[tuple[str, str, str, str, str, str], ...] = (
    # an incoming call rings here
    ("accept",            "pending",                      "",                           "connecting",   "",               ""),
    ("reject",            "pending",                      "",                           "closed",       "send_reject",    "reject"),
    ("ignore",            "pending",                      "",                           "closed",       "",               "cancel"),
    ("cancel",            "pending",                      "",                           "closed",       "",               "cancel"),
    # setting up, both directions
    ("ringing",           "SETTING_UP",                   "",                           "ringing",      "",               "ringing"),
    ("answer",            "SETTING_UP",                   "!answered",                  "=",            "note_answer",    ""),
    ("media-connected",   "SETTING_UP",                   "",                           "open",         "watch_media",    "accept"),
    # connected while the signaling is away: accepted, open once it resumes
    ("media-connected",   "reconnecting",                 "",                           "=",            "watch_media",    "accept"),
    # media lost and restored (reconnect.py: RTP watchdog, reinvites with backoff, give-up)
    ("media-lost",        "open reconnecting",            "!media_lost",                "reconnecting", "lose_media",     "reconnecting"),
    ("media-back",        "reconnecting",                 "media_lost signaling_lost",  "=",            "use_media",      ""),
    ("media-back",        "reconnecting",                 "media_lost",                 "open",         "use_media",      "reconnected"),
    ("media-gave-up",     "reconnecting",                 "media_lost",                 "closed",       "send_hangup",    "error disconnect"),
    # signaling lost and resumed (reconnect.py: resume invite with the token, give-up timer)
    # (lost again before it resumed: "reconnecting" again, the status stays)
    ("signaling-lost",    "connecting open reconnecting", "resumable",                  "reconnecting", "lose_signaling", "reconnecting"),
    # ... not answered yet, or no token: nothing to resume with
    ("signaling-lost",    "LIVE",                         "outgoing",                   "closed",       "send_hangup",    "error disconnect"),
    ("signaling-lost",    "pending connecting open reconnecting", "",                   "closed",       "",               "error cancel"),
    ("signaling-back",    "reconnecting",                 "signaling_lost media_lost",  "=",            "resume",         ""),
    ("signaling-back",    "reconnecting",                 "signaling_lost",             "open",         "resume",         "reconnected"),
    ("signaling-gave-up", "reconnecting",                 "signaling_lost",             "closed",       "send_hangup",    "error disconnect"),
    # no hangup: the new stream is not authenticated; the exchange's grace ends its side
    ("token-refused",     "reconnecting",                 "signaling_lost",             "closed",       "",               "error disconnect"),
    # the end
    ("hangup",            "SETTING_UP",                   "outgoing !answered",         "closed",       "send_hangup",    "cancel"),
    ("hangup",            "LIVE",                         "",                           "closed",       "send_hangup",    "disconnect"),
    ("remote-hangup",     "pending",                      "",                           "closed",       "",               "error cancel"),
    ("remote-hangup",     "LIVE",                         "",                           "closed",       "",               "error disconnect"),
    # the media could not be set up (or started)
    ("error",             "connecting ringing reconnecting", "was_up",                  "closed",       "send_hangup",    "error disconnect"),
    ("error",             "connecting",                   "",                           "closed",       "send_hangup",    "error"),
)
# The SDK's events a row may emit, and their arguments as the SDK passes them.
SDK_EVENTS: dict[str, Callable[[Any, Trigger], tuple[Any, ...]]] = {
    "error": lambda call, t: (t.error,),
    "accept": lambda call, t: (call,),
    "cancel": lambda call, t: (),
    "disconnect": lambda call, t: (call,),
    "reject": lambda call, t: (),
    "ringing": lambda call, t: (t.early_media,),
    "reconnecting": lambda call, t: (t.error,),
    "reconnected": lambda call, t: (),
}


@dataclass(frozen=True)
class Row:
    event: CallEvent
    sources: tuple[CallStatus, ...]
    when: tuple[str, ...]  # names in CONDITIONS, "!" negates
    to: CallStatus | None  # None: the status stays
    do: str | None  # the Call's step, its method ``_<do>``
    emits: tuple[str, ...]  # SDK events, in order ("error" first when named)

    def holds(self, facts: Facts) -> bool:
        return all(not CONDITIONS[c[1:]](facts) if c.startswith("!") else CONDITIONS[c](facts)
                   for c in self.when)

    def __str__(self) -> str:
        when = f" if {' and '.join(self.when)}" if self.when else ""
        sources = "|".join(self.sources)
        return f"{self.event} from {sources}{when} -> {self.to or '(stays)'}"


def _parse(text: tuple[str, str, str, str, str, str]) -> Row:
    event, sources, when, to, do, emits = text
    statuses = " ".join(GROUPS.get(word, word) for word in sources.split())
    row = Row(CallEvent(event), tuple(CallStatus(s) for s in statuses.split()),
              tuple(when.split()), None if to == "=" else CallStatus(to), do or None,
              tuple(emits.split()))
    unknown = [c for c in row.when if c.removeprefix("!") not in CONDITIONS]
    unknown += [e for e in row.emits if e not in SDK_EVENTS]
    if unknown:
        raise ValueError(f"call_states: row {row}: unknown {', '.join(unknown)}")
    return row


TRANSITIONS: tuple[Row, ...] = tuple(_parse(text) for text in TRANSITIONS_TEXT)


def find(status: CallStatus, event: CallEvent, facts: Facts) -> Row | None:
    """The row a call in ``status`` takes on ``event``, or None (the event is ignored)."""
    for row in TRANSITIONS:
        if row.event is event and status in row.sources and row.holds(facts):
            return row
    return None


def cells() -> Iterator[tuple[Row, CallStatus]]:
    """Every (row, status it starts from): what the tests of every row cover."""
    for row in TRANSITIONS:
        for source in row.sources:
            yield row, source
