"""Three-way conferences at the exchange: piphone's extension of the protocol (``conference``,
protocol.py).

A party of two answered calls (one usually on hold at its end) asks for a conference: the far
party of its other call (``with``) joins the call of ``callsid`` as its guest, and that other
call ends (the requester is hung up there). The three legs are mixed (rtc/mixing.py): each
member's audio is decoded, and each hears the sum of the other two, re-encoded in its own
codec; only a conference's legs are decoded and re-encoded, every other call keeps forwarding.

A member that hangs up leaves: with two left, the call is a plain two-party call again,
bridged as any other (forwarded when the codecs agree). A member that restarts its media is
mixed again with its new media (restarts.py); one cut off past its reconnect grace, or whose
restarted media does not connect in time (lifetime.py), leaves as if it had hung up, as at a
PBX: the other two talk on.

Checks, as a transfer's (transfers.py; refusals are ``error`` frames naming ``callsid``,
changing nothing): both CallSids are the requester's own legs (31000), both calls answered
two-party calls whose far party is connected (31000), and the requester's transfers and
conferences together within ``transfers_per_minute`` (31206). A conference has three members
at most: a call with a guest is no longer a two-party call, so it cannot be joined again.
"""

from __future__ import annotations

import logging
from typing import Any

from ..voice import protocol
from .legs import CallLeg, Phase
from .lifetime import CallBook
from .media import MediaBridge
from .placing import Refused
from .transfers import Transfers, far_party, leave

log = logging.getLogger(__name__)


class Conferences:
    def __init__(self, book: CallBook, media: MediaBridge, transfers: Transfers) -> None:
        self.book = book
        self.media = media
        self.transfers = transfers  # whose checks and count a conference shares

    def request(self, leg: CallLeg, payload: dict[str, Any]) -> None:
        """A ``conference`` frame of ``leg``'s party (already shown to be its own leg)."""
        try:
            self._join(leg, payload["with"])
        except Refused as refusal:
            log.info("call %s: conference refused (%d): %s", leg.call.sid, refusal.code,
                     refusal.message)
            leg.send("error", **protocol.error_payload(refusal.code, refusal.message, leg.sid))

    def _join(self, leg: CallLeg, callsid: str) -> None:
        assert leg.session is not None
        far_party(leg)
        other, guest = self.transfers.other_call(leg, callsid)
        self.transfers.count(leg.session)
        call, old = leg.call, other.call
        leave(guest, old)
        guest.call = call
        call.guests.append(guest)
        self.book.end(old, completed=True)  # the requester is hung up in its other call
        call.mixer = self.media.mix(call.mixer, [party.media for party in call.parties()])
        log.info("call %s: a conference of %s", call.sid,
                 ", ".join(party.id for party in call.parties()))

    def is_member(self, leg: CallLeg) -> bool:
        call = leg.call
        return call.mixer is not None and call.phase is Phase.ANSWERED \
            and leg in call.parties()

    def gone(self, leg: CallLeg) -> bool:
        """``leg``'s party is gone (cut off past its reconnect grace, or its restarted media
        did not connect): a member leaves as if it hung up (True); anything else, False."""
        if not self.is_member(leg):
            return False
        self.leave(leg)
        return True

    def leave(self, leg: CallLeg) -> None:
        """A member hangs up (or is gone): the others go on, mixed, or bridged once two."""
        call = leg.call
        leave(leg, call)
        self.book.drop(leg)
        rest = call.parties()
        log.info("call %s: %s left the conference", call.sid, leg.id)
        if len(rest) > 2:
            call.mixer = self.media.mix(call.mixer, [party.media for party in rest])
            return
        if call.mixer is not None:
            call.mixer.stop()
            call.mixer = None
        if len(rest) < 2:
            self.book.end(call, completed=True)
            return
        call.caller, call.callee, call.guests = rest[0], rest[1], []
        mode = self.media.join(rest[0].media, rest[1].media)
        log.info("call %s: two parties again, audio %s", call.sid, mode)
