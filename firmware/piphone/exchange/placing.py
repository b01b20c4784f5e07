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
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..voice import protocol
from ..voice.rtc import MediaError, MediaSettings, NoIceCandidate, codecs_of
from . import auth, lines
from .bridge import Leg, bridge
from .legs import CallLeg, ExchangeCall, Phase, brief, new_call_sid
from .lifetime import CallBook
from .routing import Route

if TYPE_CHECKING:
    from .server import ClientSession, Exchange

log = logging.getLogger(__name__)


class Placer:
    def __init__(self, book: CallBook, exchange: Exchange) -> None:
        self.book = book
        self.exchange = exchange
        self.config = exchange.config

    # --- the invite ----------------------------------------------------------------------------
    def place(self, session: ClientSession, payload: dict[str, Any]) -> None:
        # Checked and filed at once, not in a task: a hangup that follows the invite closely
        # (the caller gave up at once) must find the call, and two invites must not both pass
        # the capacity check.
        temp_id = payload["callsid"]
        if self.book.legs.in_use(session, temp_id):
            # Never the hangup other refusals get: it would end the call already under this id.
            log.info("%s: invite under %s refused: in use", session, brief(temp_id))
            session.send("error", **protocol.error_payload(
                31100, "callsid is already in use by this connection; a new call needs a new "
                "temporary id", temp_id))
            return
        call: ExchangeCall | None = None
        try:
            twilio = payload.get("twilio") or {}
            params = protocol.decode_params(twilio.get("params") if isinstance(twilio, dict)
                                            else "")
            admitted = self._admit(session, temp_id, params.get("To"))
            if admitted is None:
                return
            route, forks = admitted
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

    def _admit(self, session: ClientSession, temp_id: str,
               to: str | None) -> tuple[Route, list[ClientSession]] | None:
        """The call's route and the devices to ring, or None after a refusal (a hangup with
        the SDK's code)."""

        def refuse(code: int, message: str) -> None:
            log.info("%s: call to %s refused: %s", session, brief(to), message)
            session.send("hangup", callsid=temp_id, error={"code": code, "message": message})

        if session.grant is None or not session.grant.outgoing_allowed:
            return refuse(*auth.OUTGOING_REFUSED)
        route = self.exchange.dial_plan.resolve(to)
        if route is None:
            return refuse(31404, f"no route to {brief(to, 40)}: not an identity, line or "
                                 "known number")
        limit = self.book.limits.max_calls_per_identity
        if len(self.book.calls) >= self.config.max_calls:
            return refuse(31005, f"the exchange is at capacity ({self.config.max_calls} calls)")
        if self.book.calls_of(session.identity) >= limit:
            return refuse(31005, f"{session.identity} is in {limit} calls, as many as the "
                                 "exchange allows one identity")
        forks: list[ClientSession] = []
        if route.kind == "client":
            registered = [s for s in self.exchange.registrations.of(route.target)
                          if s is not session]
            if not registered:
                return refuse(31480, f"{route.target} is not registered")
            forks = [s for s in registered if not self.book.in_a_call(s)]
            if not forks or self.book.calls_of(route.target) >= limit:
                return refuse(31486, f"{route.target} is busy")
        return route, forks

    def _file(self, call: ExchangeCall, session: ClientSession, temp_id: str, sdp: str,
              params: dict[str, str], forks: list[ClientSession]) -> None:
        """The caller's leg, the ring timer, the record, then the set-up in a task."""
        # Answer in the caller's order of preference, as Twilio's edge does (the SDK puts
        # PCMU first): the caller's codec is the first it offered that we take.
        settings = self.exchange.media_settings
        offered = [c for c in codecs_of(sdp) if c in settings.codec_preferences]
        if offered:
            settings = replace(settings, codec_preferences=tuple(offered))
        media = (lines.answer_leg(call.route.target, settings) if call.route.kind == "line"
                 else Leg(settings))
        try:
            call.caller = CallLeg(call, session, call.sid, media, temp_id=temp_id)
        finally:
            if call.caller is None:  # from here on, ending the call closes it
                self.book.tasks.spawn(media.close())
        self.book.add(call.caller)
        self.book.ring_for(call)
        self.exchange.records.started(call, session.identity, temp_id)
        call.work.spawn(self._set_up(call, sdp, params, forks))

    async def _set_up(self, call: ExchangeCall, sdp: str, params: dict[str, str],
                      forks: list[ClientSession]) -> None:
        """Media for the caller's leg, then ring the forks (or answer for a line). Whatever
        fails ends the call: nothing is left half set up."""
        try:
            await self._prepare(call, sdp, params, forks)
        except NoIceCandidate as exc:  # the exchange's own network, not the caller's SDP
            self.book.end(call, caller_error=(53405, f"the exchange has {exc}"))
        except MediaError as exc:
            self.book.end(call, caller_error=(31100, f"malformed SDP: {brief(exc, 200)}"))
        except Exception:
            log.exception("call %s: set-up failed", call.sid)
            self.book.end(call, caller_error=(31000, "the exchange could not place the call"))

    async def _prepare(self, call: ExchangeCall, sdp: str, params: dict[str, str],
                       forks: list[ClientSession]) -> None:
        caller, route = call.caller, call.route
        assert caller is not None
        await caller.media.media.prepare_answer(sdp)
        if call.phase is Phase.ENDED:
            return
        if route.kind == "line":
            call.phase = Phase.RINGING
            self._ring_caller(call)
            await self.answer_caller(call)
            return
        custom = {k: v for k, v in params.items() if k != "To"}
        # Offer the callee the caller's codecs in the caller's order: a callee that takes the
        # caller's codec answers with it (piphone keeps the offer's order, as JSEP says), so
        # both ends agree and nothing is transcoded; one that does not still gets through.
        settings = caller.media.media.settings
        await asyncio.gather(*(self._fork(call, s, custom, settings) for s in forks))
        if call.phase is Phase.ENDED:
            return
        if not call.forks:
            self.book.end(call, caller_error=(31480, f"{route.target} could not be reached"))
            return
        call.phase = Phase.RINGING
        self._ring_caller(call)

    def _ring_caller(self, call: ExchangeCall) -> None:
        """Tell the caller it rings; from here on it knows the call by its CallSid."""
        assert call.caller is not None
        call.caller.sid = call.sid
        call.caller.send("ringing", callsid=call.sid)

    async def _fork(self, call: ExchangeCall, session: ClientSession,
                    custom: dict[str, str], settings: MediaSettings) -> None:
        """Offer the call to one device; a device that cannot be offered it is left out."""
        assert call.caller is not None
        child_sid = new_call_sid()
        leg = CallLeg(call, session, child_sid, Leg(settings))
        filed = False
        try:
            sdp = await leg.media.media.offer()
            # Not if the call ended, or the device went, while the offer was made.
            if call.phase is not Phase.ENDED and \
                    session in self.exchange.registrations.of(call.route.target):
                call.forks.append(leg)
                self.book.add(leg)
                filed = True
        except Exception as exc:  # one device's failure leaves the others ringing
            log.error("call %s: could not offer to %s: %s", call.sid, session, brief(exc))
        finally:  # also when the call ended and its set-up was cancelled
            if not filed:
                self.book.tasks.spawn(leg.media.close())
        if not filed:
            return
        self.exchange.records.forked(call, child_sid)
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
            await leg.media.media.apply_answer(sdp)
        except Exception as exc:  # MediaError, or aiortc's own on an answer it cannot take
            leg.send("error", **protocol.error_payload(
                31100, f"malformed SDP: {brief(exc, 200)}", leg.sid))
            self.book.end(call, caller_error=(53405, "the callee's media could not be set up"))
            return
        self.book.await_media(leg)
        if not await self.answer_caller(call) or call.caller is None:
            return
        try:
            mode = bridge(call.caller.media, leg.media)
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
            sdp = await caller.media.media.answer()
        except Exception as exc:  # an offer aiortc takes but cannot answer: end it now
            log.info("call %s: cannot answer the caller's offer: %s", call.sid, brief(exc))
            self.book.end(call, caller_error=(31100, "the exchange cannot answer this offer: "
                                                     f"{brief(exc, 200)}"))
            return False
        if call.phase is Phase.ENDED:
            return False
        call.phase = Phase.ANSWERED
        self.book.answered(call)
        self.book.await_media(caller)
        try:
            self.exchange.records.answered(call)
        except Exception:  # a record that could not be written does not stop the call
            log.exception("call %s: could not file the answer", call.sid)
        caller.send("answer", callsid=call.sid, sdp=sdp, reconnect=caller.reconnect_token)
        log.info("call %s answered (%s)", call.sid, call.route.to)
        return True
