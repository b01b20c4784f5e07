"""How long calls and legs live at the exchange, and how they end.

``CallBook`` holds every call going on and its legs (legs.py). Whatever ends a call (a hangup,
a reject, a timer, a failure half-way through its set-up, a socket that did not come back) goes
through ``end``, which first releases every leg (its ids, timers and peer connection) and only
then does what may fail (telling the parties, filing the record). Timers bound what a client
can make the exchange hold: the ring timeout (every call, service lines included), the time a
leg's media has to connect, the maximum call length, and the grace of a leg cut off from its
socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ..voice.tasks import TaskSet
from .config import ExchangeConfig
from .legs import CallLeg, ExchangeCall, LegIndex, Party, Phase
from .records import CallRecords

log = logging.getLogger(__name__)

Error = tuple[int, str]  # (Twilio error code, message) a party is told in its hangup


class CallBook:
    def __init__(self, config: ExchangeConfig, records: CallRecords) -> None:
        self.config = config
        self.limits = config.limits
        self.records = records
        self.calls: set[ExchangeCall] = set()
        self.legs = LegIndex()
        self.tasks = TaskSet(self)  # peer connections being closed
        # voicemail.py's: how long a call rings before it takes the call (None: it does not)
        # and the diversion itself (True: taken)
        self.voicemail_after: Callable[[ExchangeCall], float | None] = lambda call: None
        self.divert: Callable[[ExchangeCall, str], bool] = lambda call, why: False
        # conference.py's: a party that is gone (cut off past its grace, its media lost)
        # leaves its conference, which goes on (True); else its call ends
        self.leave_conference: Callable[[CallLeg], bool] = lambda leg: False

    # --- filing ------------------------------------------------------------------------------
    def add(self, leg: CallLeg) -> None:
        self.calls.add(leg.call)
        self.legs.add(leg)

    def calls_of(self, identity: str | None) -> int:
        """Calls going on that ``identity`` places or talks in."""
        return sum(1 for call in self.calls if call.is_party(identity))

    def in_a_call(self, session: Party) -> bool:
        """Whether ``session`` places or talks in a call (it may still ring for others)."""
        return any(leg in leg.call.parties() for leg in self.legs.of(session))

    # --- ending --------------------------------------------------------------------------------
    def end(self, call: ExchangeCall, *, by: CallLeg | None = None,
            caller_error: Error | None = None, callee_error: Error | None = None,
            completed: bool = False) -> None:
        """End the call: release every leg, tell every party that did not end it (with its
        error, if any), file the record. ``completed``: the error is a reason, not a failure
        (the call was answered and ended as it should)."""
        if call.phase is Phase.ENDED:
            return
        answered = call.phase is Phase.ANSWERED
        call.phase = Phase.ENDED
        if call.timer is not None:
            call.timer.cancel()
        call.digits.cancel()
        call.work.cancel()  # set-up still under way (a task ending its own call goes on)
        # Who is told what, before the legs lose their sessions.
        told: list[tuple[CallLeg, str, Error | None]] = [
            (fork, "cancel", None) for fork in call.forks if fork is not by]
        if call.callee is not None and call.callee is not by:
            told.append((call.callee, "hangup", callee_error))
        if call.caller is not None and call.caller is not by:
            told.append((call.caller, "hangup", caller_error))
        told += [(guest, "hangup", callee_error) for guest in call.guests if guest is not by]
        if call.mixer is not None:
            call.mixer.stop()
        call.stop_ringback()
        sessions = {leg: leg.session for leg, _, _ in told}
        for leg in call.legs():
            self.drop(leg)
        self.calls.discard(call)
        for done in call.on_end:
            try:
                done()
            except Exception:  # a message not kept must not keep the parties from hearing
                log.exception("call %s: its end could not be handled", call.sid)
        for leg, type_, error in told:
            session = sessions[leg]
            if session is None:
                continue
            payload: dict[str, Any] = {"callsid": leg.sid}
            if error is not None:
                payload["error"] = {"code": error[0], "message": error[1]}
            try:
                session.send(type_, **payload)
            except Exception:  # one party's socket must not keep the others from hearing
                log.exception("call %s: could not tell %s it ended", call.sid, leg.id)
        error = caller_error or callee_error
        log.info("call %s ended (%s)%s", call.sid,
                 f"by {by.id}" if by is not None else "ringing" if not answered else "exchange",
                 f": {error[0]} {error[1]}" if error else "")
        try:
            self.records.ended(
                call.sid, codec=call.caller.media.codec if call.caller is not None else None,
                answered=answered, error_code=None if completed or error is None
                else error[0], error=f"{error[0]} {error[1]}" if error else None,
                caller_hung_up=by is not None and by is call.caller)
        except Exception:  # the call log is a record, not the call: the call has ended
            log.exception("call %s: could not file the end of the call", call.sid)

    def drop(self, leg: CallLeg) -> None:
        """Release one leg: its ids, its timers, its peer connection (closed in a task)."""
        self.legs.remove(leg)
        for timer in (leg.grace_timer, leg.media_timer):
            if timer is not None:
                timer.cancel()
        leg.grace_timer = leg.media_timer = None
        self.tasks.spawn(leg.media.close())

    # --- timers --------------------------------------------------------------------------------
    def ring_for(self, call: ExchangeCall) -> None:
        """Every call, service lines included, is answered within the ring timeout or ends."""
        voicemail = self.voicemail_after(call)
        call.timer = self._later(self.config.ring_timeout if voicemail is None else voicemail,
                                 self._ring_timeout, call)

    def _ring_timeout(self, call: ExchangeCall) -> None:
        # Only while the caller has no answer: ``answered`` cancels this timer.
        if call.phase is Phase.RINGING and self.divert(call, "no-answer"):
            return
        if call.phase in (Phase.SETUP, Phase.RINGING):
            self.end(call, caller_error=(31480, "no answer"))
        else:  # a callee answered, but the exchange could not answer the caller in time
            error = (31005, "the call could not be connected in time")
            self.end(call, caller_error=error, callee_error=error)

    def answered(self, call: ExchangeCall) -> None:
        """The call is answered: the ring timeout gives way to the maximum call length."""
        if call.timer is not None:
            call.timer.cancel()
            call.timer = None
        if self.limits.max_call_length > 0:
            call.timer = self._later(self.limits.max_call_length, self._too_long, call)

    def _too_long(self, call: ExchangeCall) -> None:
        reason = (31005, f"the call reached the exchange's maximum call length "
                         f"({self.limits.max_call_length:.0f} s)")
        self.end(call, caller_error=reason, callee_error=reason, completed=True)

    def await_media(self, leg: CallLeg, restart: bool = False) -> None:
        """The leg's current media has ``media_timeout`` seconds to connect (ICE and DTLS);
        else the call ends with 53405, the error the SDK reports for failed media. A media
        restart has as long as a lost socket (``reconnect_grace``), if that is longer: a
        client whose network is gone restarts its media for up to 30 s (the SDK waits for
        each attempt's ICE to fail first), and each reinvite starts the bound afresh."""
        if leg.media_timer is not None:
            leg.media_timer.cancel()
        timeout = self.limits.media_timeout
        if restart:
            timeout = max(timeout, self.config.reconnect_grace)
        leg.media_timer = self._later(timeout, self._media_check, leg, leg.media, timeout)

    def _media_check(self, leg: CallLeg, media: object, timeout: float) -> None:
        leg.media_timer = None
        call = leg.call
        if call.phase is Phase.ENDED or leg.media is not media:
            return  # ended, or a reinvite replaced this media (it has a timer of its own)
        try:
            connected = leg.media.connected
        except Exception:  # aiortc state that cannot be read is media that did not connect
            log.exception("call %s: media state of %s unreadable", call.sid, leg.id)
            connected = False
        if connected:
            return
        log.info("call %s: media of %s did not connect within %.0f s", call.sid, leg.id, timeout)
        if self.leave_conference(leg):
            return
        mine = (53405, f"media connection failed: not connected within {timeout:.0f} s")
        theirs = (53405, "media connection failed: the other party's media did not connect")
        self.end(call, caller_error=mine if leg is call.caller else theirs,
                 callee_error=mine if leg is call.callee else theirs)

    def cut_off(self, leg: CallLeg) -> None:
        """The leg's socket closed mid-call: keep it ``reconnect_grace`` seconds for its party
        to resume from a new one (restarts.py), else end the call (a conference's member
        leaves it instead: the others talk on)."""
        self.legs.detach(leg)
        grace = self.config.reconnect_grace
        log.info("call %s: %s lost its socket; waiting %.0f s for it", leg.call.sid, leg.id,
                 grace)
        leg.grace_timer = self._later(grace, self._grace_over, leg)

    def _grace_over(self, leg: CallLeg) -> None:
        leg.grace_timer = None
        if leg.session is None and leg.call.phase is not Phase.ENDED:
            log.info("call %s: %s did not come back", leg.call.sid, leg.id)
            if not self.leave_conference(leg):
                self.end(leg.call, by=leg)

    @staticmethod
    def _later(delay: float, callback: Callable[..., None], *args: Any) -> asyncio.TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback, *args)

    async def close(self) -> None:
        for call in list(self.calls):
            self.end(call)
        await self.tasks.wait(timeout=5)
