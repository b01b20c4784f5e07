"""Calls at the exchange: a back-to-back agent, as Twilio's edge is.

Each party has its own leg (legs.py) with its own media session here, and ``bridge`` joins
two legs' audio. This module takes the frames a session sends about calls and hands each to
the part that does that job: placing and answering (placing.py), media restarts and resumes
(restarts.py), call messages (messages.py), and hanging up and digits here. ``CallBook``
(lifetime.py) holds the calls and ends them. A leg whose socket vanished mid-call is kept
for ``reconnect_grace`` seconds, so its client can resume with the reconnect token.

``CallTable`` is the call layer's one door: the session layer (session.py) hands it each call
frame of a session (``handle``) and tells it of a closed session (``session_closed``); the
call layer knows a session only as a ``Party`` (legs.py). What it needs besides is passed in:
the dial plan and the registered devices (routing.py), media (media.py) and the call log
(records.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from .. import dtmf
from ..logsafe import quoted
from ..voice import protocol
from .conference import Conferences
from .config import ExchangeConfig
from .legs import CallLeg, ExchangeCall, LegIndex, Party, Phase
from .lifetime import CallBook
from .media import MediaBridge
from .messages import MessageRelay
from .placing import Placer
from .records import CallRecords
from .restarts import Restarts
from .routing import DialPlan
from .transfers import Transfers
from .voicemail import Voicemail

log = logging.getLogger(__name__)

# Digit relays of one call waiting out their "w" pauses (500 ms each); a person pressing keys
# has one or two, a client sending "w" by the thousand would otherwise hold a task per frame.
MAX_DIGIT_RELAYS = 16


class CallTable:
    def __init__(self, config: ExchangeConfig, *, dial_plan: DialPlan,
                 registered: Callable[[str], Sequence[Party]], media: MediaBridge,
                 records: CallRecords) -> None:
        self.book = CallBook(config, records)
        self.placer = Placer(self.book, config, dial_plan, registered, media, records)
        self.restarts = Restarts(self.book, media)
        self.messages = MessageRelay(config.limits.messages_per_minute)
        self.transfers = Transfers(self.book, self.placer, media, records,
                                   config.limits.transfers_per_minute)
        self.conferences = Conferences(self.book, media, self.transfers)
        self.voicemail = Voicemail(config.voicemail, self.book, self.placer.answer_caller,
                                   self.placer.ring_caller)
        self.book.voicemail_after = lambda call: self.voicemail.ring_timeout(call.route)
        self.book.divert = self.voicemail.divert
        self.book.leave_conference = self.conferences.gone
        self.placer.voicemail_takes = self.voicemail.accepts

    @property
    def calls(self) -> set[ExchangeCall]:
        """The calls going on."""
        return self.book.calls

    @property
    def legs(self) -> LegIndex:
        """Every leg the calls hold (``len``: how many)."""
        return self.book.legs

    # --- frames ------------------------------------------------------------------------------
    def handle(self, session: Party, frame: protocol.Frame) -> None:
        """A call frame (invite, answer, reject, hangup, dtmf, reinvite, message, transfer,
        conference) from an authenticated session."""
        payload = frame.payload
        if frame.type == "invite":
            if payload.get("reconnect"):
                self.restarts.resume(session, payload)
            else:
                self.placer.place(session, payload)
            return
        callsid = payload.get("callsid", "")
        leg = self.book.legs.find(session, callsid)  # only ever a leg of this session's
        if leg is None and frame.type == "hangup":
            # Hung up while cut off: the hangup comes on the new socket, before any resume.
            cut_off = self.book.legs.cut_off(session.identity, callsid)
            if cut_off is not None:
                self._hangup(cut_off, payload)  # a conference's member leaves it
                return
        if leg is None and frame.type in ("transfer", "conference"):  # not this session's
            session.send("error", **protocol.error_payload(
                31000, f"{frame.type}: no call of yours has that CallSid", callsid))
            return
        if leg is None:
            # A hangup or cancel for an unknown call is ignored, as at Twilio.
            log.info("%s: %s for unknown call %s ignored", session, frame.type, quoted(callsid))
            return
        handler = {
            "answer": self.placer.answer,
            "reject": self._reject,
            "hangup": self._hangup,
            "dtmf": self._dtmf,
            "reinvite": self.restarts.reinvite,
            "message": self.messages.relay,
            "transfer": self.transfers.request,
            "conference": self.conferences.request,
        }.get(frame.type)
        if handler is not None:
            handler(leg, payload)

    # --- declining and hanging up --------------------------------------------------------------
    def _reject(self, leg: CallLeg, payload: dict[str, Any]) -> None:
        call = leg.call
        if call.phase is not Phase.RINGING or leg not in call.forks:
            return
        if leg.session is not None and self.book.in_a_call(leg.session):
            # call waiting: a device busy in another call refused this one; the others ring on,
            # and with none left the caller hears busy (SIP 486), not a decline
            self._stop_ringing(leg, none_left=(31486, "the callee is busy"))
            return
        # A decline ends every fork (SIP 603), as Twilio does; the decliner is told nothing more.
        # With voicemail the caller is answered by it instead, as a desk phone's reject does.
        call.forks.remove(leg)
        self.book.drop(leg)
        if not self.book.divert(call, "rejected"):
            self.book.end(call, caller_error=(31603, "the callee declined the call"))

    def _hangup(self, leg: CallLeg, payload: dict[str, Any]) -> None:
        call = leg.call
        if leg in call.forks and call.phase in (Phase.SETUP, Phase.RINGING):
            self._stop_ringing(leg)
            return
        if self.conferences.is_member(leg):  # the others talk on
            self.conferences.leave(leg)
            return
        self.book.end(call, by=leg)

    def _stop_ringing(self, fork: CallLeg,
                      none_left: tuple[int, str] = (31480, "no device answered")) -> None:
        """One device stops ringing; the others may still answer. While the call is being set
        up, the set-up itself ends it if no device is left to ring (else ``none_left``)."""
        call = fork.call
        call.forks.remove(fork)
        self.book.drop(fork)
        if not call.forks and call.phase is Phase.RINGING and \
                not self.book.divert(call, "busy" if none_left[0] == 31486 else "no-answer"):
            self.book.end(call, caller_error=none_left)

    # --- digits ------------------------------------------------------------------------------
    def _dtmf(self, leg: CallLeg, payload: dict[str, Any]) -> None:
        call = leg.call
        digits = payload["dtmf"]
        if call.phase is not Phase.ANSWERED:
            return
        if any(c not in "0123456789*#w" for c in digits):
            leg.send("error", **protocol.error_payload(
                31100, f"dtmf may only hold 0-9 * # w, got {quoted(digits, 40)}", leg.sid))
            return
        other = call.other(leg)
        if other is None:
            log.info("call %s: digits %s to line %s", call.sid, quoted(digits, 40),
                     call.route.target)
            return
        if len(call.digits) >= MAX_DIGIT_RELAYS:
            leg.send("error", **protocol.error_payload(
                31005, f"more than {MAX_DIGIT_RELAYS} digit strings with pauses pending",
                leg.sid))
            return
        call.digits.spawn(self._relay_digits(other, digits))

    async def _relay_digits(self, leg: CallLeg, digits: str) -> None:
        # A browser sends "12w3" in one frame: honour each w as a 500 ms pause.
        await dtmf.send_with_pauses(digits, lambda group: leg.send("dtmf", callsid=leg.sid,
                                                                   dtmf=group))

    # --- lost sessions -------------------------------------------------------------------------
    def session_closed(self, session: Party) -> None:
        """The session's socket closed (by its client, the network, or the exchange for its
        liveness): its answered legs wait for a resume, its ringing devices stop ringing, any
        other call of it ends. Idempotent."""
        for leg in self.book.legs.of(session):
            call = leg.call
            if call.phase is Phase.ENDED:
                continue
            if call.phase is Phase.ANSWERED and leg in call.parties():
                self.book.cut_off(leg)
            elif leg in call.forks:
                self._stop_ringing(leg)
            else:
                self.book.end(call, by=leg)

    async def close(self) -> None:
        await self.book.close()
