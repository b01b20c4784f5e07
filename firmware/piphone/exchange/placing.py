"""Placing calls at the exchange: from an ``invite`` to the answer that wins.

An invite is checked (route, capacity, the caller's and callee's limits) and filed at once,
all or nothing: whatever fails while the call is placed (the call log, media, routing) ends it
through ``CallBook.end``, which releases everything it took. Then, in a task of the call, the
caller's media is prepared and each registered device of the callee is offered the call (a
fork); a service line answers at once. The first fork to answer wins; the others get
``cancel``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..logsafe import quoted
from ..voice import protocol
from . import auth
from .config import ExchangeConfig
from .legs import CallLeg, ExchangeCall, Party, Phase, new_call_sid
from .lifetime import CallBook
from .media import MediaBridge, MediaError, NoIceCandidate
from .records import CallRecords
from .routing import DialPlan, Route

log = logging.getLogger(__name__)


class Refused(Exception):
    """A call that may not be placed: the caller gets a hangup with the SDK's code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code, self.message = code, message


class Placer:
    def __init__(self, book: CallBook, config: ExchangeConfig, dial_plan: DialPlan,
                 registered: Callable[[str], Sequence[Party]], media: MediaBridge,
                 records: CallRecords) -> None:
        self.book = book
        self.config = config
        self.dial_plan = dial_plan
        self.registered = registered  # identity -> its registered devices, in order
        self.media = media
        self.records = records
        # voicemail.py's: whether a call on this route would go to voicemail for this reason
        self.voicemail_takes: Callable[[Route, str], bool] = lambda route, why: False

    # --- the invite ----------------------------------------------------------------------------
    def place(self, session: Party, payload: dict[str, Any]) -> None:
        # Checked and filed at once, not in a task: a hangup that follows the invite closely
        # (the caller gave up at once) must find the call, and two invites must not both pass
        # the capacity check.
        temp_id = payload["callsid"]
        if self.book.legs.in_use(session, temp_id):
            # Never the hangup other refusals get: it would end the call already under this id.
            log.info("%s: invite under %s refused: in use", session, quoted(temp_id))
            session.send("error", **protocol.error_payload(
                31100, "callsid is already in use by this connection; a new call needs a new "
                "temporary id", temp_id))
            return
        call: ExchangeCall | None = None
        try:
            twilio = payload.get("twilio") or {}
            params = protocol.decode_params(twilio.get("params") if isinstance(twilio, dict)
                                            else "")
            to = params.get("To")
            try:
                route, forks = self.admit(session, to)
            except Refused as refusal:
                log.info("%s: call to %s refused: %s", session, quoted(to), refusal.message)
                session.send("hangup", callsid=temp_id,
                             error={"code": refusal.code, "message": refusal.message})
                return
            call = ExchangeCall(sid=new_call_sid(), route=route)
            self._file(call, session, temp_id, payload["sdp"], params, forks)
        except Exception:  # routing, media, the call log: the call takes nothing with it
            log.exception("%s: a call could not be placed", session)
            error = (31000, "the exchange could not place the call")
            if call is not None and call.caller is not None:
                self.book.end(call, caller_error=error)
            else:
                session.send("hangup", callsid=temp_id,
                             error={"code": error[0], "message": error[1]})

    def admit(self, session: Party, to: str | None) -> tuple[Route, list[Party]]:
        """The call's route and the devices to ring; Refused (the SDK's code) if it may not
        be placed."""
        if session.grant is None or not session.grant.outgoing_allowed:
            raise Refused(*auth.OUTGOING_REFUSED)
        route = self.dial_plan.resolve(to)
        if route is None:
            raise Refused(31404, f"no route to {quoted(to, 40)}: not an identity, line or "
                                 "known number")
        limit = self.book.limits.max_calls_per_identity
        if len(self.book.calls) >= self.config.max_calls:
            raise Refused(31005, f"the exchange is at capacity ({self.config.max_calls} calls)")
        if self.book.calls_of(session.identity) >= limit:
            raise Refused(31005, f"{session.identity} is in {limit} calls, as many as the "
                                 "exchange allows one identity")
        forks: list[Party] = []
        if route.kind == "client":
            registered = [s for s in self.registered(route.target) if s is not session]
            if not registered:
                if self.voicemail_takes(route, "offline"):
                    return route, []  # no device to ring: voicemail answers (_prepare)
                raise Refused(31480, f"{route.target} is not registered")
            forks = [s for s in registered
                     if self.config.call_waiting or not self.book.in_a_call(s)]
            if not forks or self.book.calls_of(route.target) >= limit:
                if self.voicemail_takes(route, "busy"):
                    return route, []
                raise Refused(31486, f"{route.target} is busy")
        return route, forks

    def _file(self, call: ExchangeCall, session: Party, temp_id: str, sdp: str,
              params: dict[str, str], forks: list[Party]) -> None:
        """The caller's leg, the ring timer, the record, then the set-up in a task."""
        media = self.media.for_caller(call.route, sdp)
        try:
            call.caller = CallLeg(call, session, call.sid, media, temp_id=temp_id)
        finally:
            if call.caller is None:  # from here on, ending the call closes it
                self.book.tasks.spawn(media.close())
        self.book.add(call.caller)
        self.book.ring_for(call)
        self.records.started(call.sid, caller=session.identity, to=call.route.to,
                             temp_id=temp_id)
        call.work.spawn(self._set_up(call, sdp, params, forks))

    async def _set_up(self, call: ExchangeCall, sdp: str, params: dict[str, str],
                      forks: list[Party]) -> None:
        """Media for the caller's leg, then ring the forks (or answer for a line). Whatever
        fails ends the call: nothing is left half set up."""
        try:
            await self._prepare(call, sdp, params, forks)
        except NoIceCandidate as exc:  # the exchange's own network, not the caller's SDP
            self.book.end(call, caller_error=(53405, f"the exchange has {exc}"))
        except MediaError as exc:
            self.book.end(call, caller_error=(31100, f"malformed SDP: {quoted(exc, 200)}"))
        except Exception:
            log.exception("call %s: set-up failed", call.sid)
            self.book.end(call, caller_error=(31000, "the exchange could not place the call"))

    async def _prepare(self, call: ExchangeCall, sdp: str, params: dict[str, str],
                       forks: list[Party]) -> None:
        caller, route = call.caller, call.route
        assert caller is not None
        await caller.media.prepare_answer(sdp)
        if call.phase is Phase.ENDED:
            return
        if route.kind == "line":
            call.phase = Phase.RINGING
            self.ring_caller(call)
            await self.answer_caller(call)
            return
        custom = {k: v for k, v in params.items() if k != "To"}
        await asyncio.gather(*(self.fork(call, s, custom) for s in forks))
        if call.phase is Phase.ENDED:
            return
        if not call.forks:
            why = "busy" if self.registered(route.target) else "offline"
            if not self.book.divert(call, why):
                self.book.end(call, caller_error=(31480, f"{route.target} could not be reached"))
            return
        call.phase = Phase.RINGING
        self.ring_caller(call)

    def ring_caller(self, call: ExchangeCall) -> None:
        """Tell the caller it rings; from here on it knows the call by its CallSid."""
        assert call.caller is not None
        call.caller.sid = call.sid
        call.caller.send("ringing", callsid=call.sid)

    async def fork(self, call: ExchangeCall, session: Party,
                    custom: dict[str, str]) -> None:
        """Offer the call to one device; a device that cannot be offered it is left out."""
        assert call.caller is not None
        child_sid = new_call_sid()
        leg = CallLeg(call, session, child_sid, self.media.for_fork(call.caller.media))
        filed = False
        try:
            sdp = await leg.media.offer()
            # Not if the call ended, or the device went, while the offer was made.
            if call.phase is not Phase.ENDED and session in self.registered(call.route.target):
                call.forks.append(leg)
                self.book.add(leg)
                filed = True
        except Exception as exc:  # one device's failure leaves the others ringing
            log.error("call %s: could not offer to %s: %s", call.sid, session, quoted(exc))
        finally:  # also when the call ended and its set-up was cancelled
            if not filed:
                self.book.tasks.spawn(leg.media.close())
        if not filed:
            return
        self.records.forked(call.sid, child_sid)
        caller_identity = call.caller.identity
        parameters = {
            "From": f"client:{caller_identity}",
            "To": call.route.to,
            "CallSid": child_sid,
            "AccountSid": self.config.account_sid,
            "Params": protocol.encode_params(custom),
        }
        stir = self.config.attestation.get(caller_identity or "")
        if stir is not None:
            parameters["StirStatus"] = stir
        session.send("invite", callsid=child_sid, sdp=sdp, parameters=parameters,
                     reconnect=leg.reconnect_token)

    # --- the answer ----------------------------------------------------------------------------
    def answer(self, leg: CallLeg, payload: dict[str, Any]) -> None:
        """A fork answered: it wins, the others are cancelled."""
        call = leg.call
        if call.phase is not Phase.RINGING or leg not in call.forks:
            log.info("answer for %s ignored: call is %s", leg.id, call.phase.value)
            return
        call.callee = leg
        call.phase = Phase.ANSWERED
        for other in list(call.forks):
            if other is not leg:
                other.send("cancel", callsid=other.sid)
                self.book.drop(other)
        call.forks = []
        call.work.spawn(self._connect_answer(call, leg, payload["sdp"]))

    async def _connect_answer(self, call: ExchangeCall, leg: CallLeg, sdp: str) -> None:
        try:
            await leg.media.apply_answer(sdp)
        except Exception as exc:  # MediaError, or aiortc's own on an answer it cannot take
            leg.send("error", **protocol.error_payload(
                31100, f"malformed SDP: {quoted(exc, 200)}", leg.sid))
            self.book.end(call, caller_error=(53405, "the callee's media could not be set up"))
            return
        self.book.await_media(leg)
        if call.transferred:  # its caller was answered before it was transferred here
            self.book.answered(call)
            self.records.answered(call.sid, [(p.identity or p.id, p.media_counters)
                                             for p in (call.caller, leg) if p is not None])
        elif not await self.answer_caller(call):
            return
        if call.phase is Phase.ENDED or call.caller is None:
            return
        call.stop_ringback()  # a transferred caller's: it hears the callee from now on
        try:
            mode = self.media.join(call.caller.media, leg.media)
            log.info("call %s: audio %s (%s / %s)", call.sid, mode, call.caller.media.codec,
                     leg.media.codec)
        except Exception:  # aiortc state that cannot be read: no audio is better than a leak
            log.exception("call %s: could not bridge its legs", call.sid)
            error = (31000, "the exchange could not connect the call")
            self.book.end(call, caller_error=error, callee_error=error)

    async def answer_caller(self, call: ExchangeCall) -> bool:
        """Answer the caller's offer; False if the call ended instead."""
        caller = call.caller
        assert caller is not None
        try:
            sdp = await caller.media.answer()
        except Exception as exc:  # an offer aiortc takes but cannot answer: end it now
            log.info("call %s: cannot answer the caller's offer: %s", call.sid, quoted(exc))
            self.book.end(call, caller_error=(31100, "the exchange cannot answer this offer: "
                                                     f"{quoted(exc, 200)}"))
            return False
        if call.phase is Phase.ENDED:
            return False
        call.phase = Phase.ANSWERED
        self.book.answered(call)
        self.book.await_media(caller)
        try:
            self.records.answered(call.sid, [(leg.identity or leg.id, leg.media_counters)
                                             for leg in (caller, call.callee) if leg is not None])
        except Exception:  # a record that could not be written does not stop the call
            log.exception("call %s: could not file the answer", call.sid)
        caller.send("answer", callsid=call.sid, sdp=sdp, reconnect=caller.reconnect_token)
        log.info("call %s answered (%s)", call.sid, call.route.to)
        return True
