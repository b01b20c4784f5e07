"""Transfers at the exchange: piphone's extension of the protocol (``transfer``, protocol.py).

A party of an answered call asks the exchange to hand the far party on, and leaves:

- blind (``to``): the far party's leg, its media session and all, moves into a new call that
  rings ``to``'s devices as a placed call rings a callee (placing.py; ``From`` is the far
  party). It hears ringback, played by the exchange into its leg, while the target rings.
  When one answers, the far leg's audio is bridged to it. The far party's client sees
  only its audio change (its CallSid stays), as at Twilio when a call is redirected to a
  ``<Dial>``. No answer: the far party is hung up (31480), as a ``<Dial>`` that ends the TwiML.
- attended (``with``): the requester's other call (the consultation): the far party of
  ``callsid`` takes the requester's place in that call, bridged to its far party.

The requester's legs then get ``hangup``. Checks, each refused with an ``error`` frame naming
the requester's callsid, changing nothing:

- ``callsid`` and ``with`` are looked up among the requester's own legs (calls.py): a call it
  is not in does not exist for it (31000); both must be answered calls of two parties (not a
  line, not still ringing) whose far party is connected (not cut off): 31000;
- one of ``to`` and ``with``, not both: 31100;
- the requester's session asks for at most ``transfers_per_minute`` ([limits]): 31206;
- ``to`` is admitted as a call the requester places (its token must allow outgoing calls; the
  dial plan routes it to a client, 31404; the exchange's and the target's call limits,
  31005/31486; registered devices other than the two parties', 31480) and is not the far
  party itself (31404).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from ..logsafe import quoted
from ..pcm import Ringback
from ..voice import protocol
from .legs import CallLeg, ExchangeCall, Party, Phase, new_call_sid
from .lifetime import CallBook
from .limits import Window
from .media import MediaBridge
from .placing import Placer, Refused
from .records import CallRecords

log = logging.getLogger(__name__)


class Transfers:
    def __init__(self, book: CallBook, placer: Placer, media: MediaBridge,
                 records: CallRecords, per_minute: int) -> None:
        self.book = book
        self.placer = placer
        self.media = media
        self.records = records
        self.per_minute = per_minute
        self._windows: weakref.WeakKeyDictionary[Party, Window] = weakref.WeakKeyDictionary()

    def request(self, leg: CallLeg, payload: dict[str, Any]) -> None:
        """A ``transfer`` frame of ``leg``'s party (already shown to be its own leg)."""
        try:
            self._transfer(leg, payload)
        except Refused as refusal:
            log.info("call %s: transfer refused (%d): %s", leg.call.sid, refusal.code,
                     refusal.message)
            leg.send("error", **protocol.error_payload(refusal.code, refusal.message, leg.sid))

    def _transfer(self, leg: CallLeg, payload: dict[str, Any]) -> None:
        session = leg.session
        assert session is not None  # a leg found by its session's frame
        if ("to" in payload) == ("with" in payload):
            raise Refused(31100, "a transfer names either to (blind) or with (attended)")
        far = far_party(leg)
        other = None
        if "with" in payload:
            other, other_far = self.other_call(leg, payload["with"])
        self.count(session)
        if other is None:
            self._blind(leg, far, session, str(payload["to"]))
        else:
            self._attended(leg, far, other, other_far)

    def other_call(self, leg: CallLeg, callsid: str) -> tuple[CallLeg, CallLeg]:
        """The requester's leg in its other call ``callsid``, and that call's far party."""
        assert leg.session is not None
        other = self.book.legs.find(leg.session, callsid)
        if other is None or other.call is leg.call:
            raise Refused(31000, "with: no other call of yours has that CallSid")
        return other, far_party(other)

    def count(self, session: Party) -> None:
        """One more request of ``session``'s (transfers and conferences): 31206 over the
        limit."""
        window = self._windows.get(session)
        if window is None:
            window = self._windows[session] = Window(self.per_minute)
        if not window.add():
            raise Refused(31206, f"over {self.per_minute} transfers a minute")

    # --- blind: the far party rings the target ------------------------------------------------
    def _blind(self, leg: CallLeg, far: CallLeg, session: Party, to: str) -> None:
        wanted = self.placer.dial_plan.resolve(to)
        if wanted is not None and wanted.kind == "client" and wanted.target == far.identity:
            raise Refused(31404, "a party cannot be transferred to itself")
        route, forks = self.placer.admit(session, to)
        if route.kind != "client":
            raise Refused(31404, f"{quoted(to, 40)} is a service line: a transfer goes to a "
                                 "client")
        forks = [s for s in forks if s is not far.session]
        if not forks:
            raise Refused(31486, f"{route.target} is busy")
        old = leg.call
        new = ExchangeCall(sid=new_call_sid(), route=route, transferred=True)
        leave(far, old)
        far.call, new.caller = new, far
        self.book.calls.add(new)
        self.book.ring_for(new)
        new.ringback = self.media.play(far.media, Ringback())  # until answered (placing.py)
        log.info("call %s: %s transferred to %s (call %s)", old.sid, far.id, route.to, new.sid)
        self.book.end(old, completed=True)  # the requester is told hangup
        self.records.started(new.sid, caller=far.identity, to=route.to, temp_id=new.sid)
        new.work.spawn(self._ring(new, forks))

    async def _ring(self, call: ExchangeCall, forks: list[Party]) -> None:
        try:
            await asyncio.gather(*(self.placer.fork(call, s, {}) for s in forks))
            if call.phase is Phase.ENDED:
                return
            if not call.forks:
                self.book.end(call, caller_error=(31480, f"{call.route.target} could not be "
                                                         "reached"))
                return
            call.phase = Phase.RINGING
        except Exception:
            log.exception("call %s: the transfer could not ring its target", call.sid)
            self.book.end(call, caller_error=(31000, "the exchange could not transfer the call"))

    # --- attended: the far party takes the requester's place in its other call ------------------
    def _attended(self, leg: CallLeg, far: CallLeg, other: CallLeg, other_far: CallLeg) -> None:
        old, into = leg.call, other.call
        leave(far, old)
        if into.caller is other:
            into.caller = far
        else:
            into.callee = far
        far.call = into
        requester = other.session
        self.book.drop(other)
        # the held call's hangup first: a phone then never offers it back for a moment
        self.book.end(old, completed=True)
        if requester is not None:
            requester.send("hangup", callsid=other.sid)
        mode = self.media.join(far.media, other_far.media)
        log.info("call %s: %s joined to %s in call %s (audio %s)", old.sid, far.id,
                 other_far.id, into.sid, mode)


def far_party(leg: CallLeg) -> CallLeg:
    """The other party of ``leg``'s answered two-party call, connected; else Refused."""
    call = leg.call
    if call.phase is not Phase.ANSWERED or leg not in (call.caller, call.callee) \
            or call.route.kind != "client" or call.guests:
        raise Refused(31000, "only an answered call between two parties can be transferred")
    far = call.other(leg)
    if far is None or far.session is None or far.restarting:
        raise Refused(31000, "the other party is reconnecting: try again")
    return far


def leave(leg: CallLeg, call: ExchangeCall) -> None:
    """``leg`` is no longer a party of ``call`` (ending the call leaves it alone)."""
    if call.caller is leg:
        call.caller = None
    elif call.callee is leg:
        call.callee = None
    elif leg in call.guests:
        call.guests.remove(leg)
