"""Calls at the exchange: a back-to-back agent, as Twilio's edge is.

A call has a parent leg (the caller, CallSid ``CA...``) and, while it rings, one child leg per
registered device of the callee's identity (a fork, each with its own CallSid). The first
``answer`` wins; the other forks get ``cancel``. Each leg has its own media session here and
``bridge`` joins the winner's audio to the caller's. A leg whose socket vanished mid-call is
kept for ``reconnect_grace`` seconds, so its client can resume with the reconnect token.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..voice import protocol
from ..voice.media import MediaError, MediaSettings, NoIceCandidate, codecs_of
from ..voice.tasks import TaskSet
from . import auth, lines
from .bridge import Leg, bridge
from .routing import Route

if TYPE_CHECKING:
    from .server import ClientSession, Exchange

log = logging.getLogger(__name__)


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
    session: ClientSession | None
    sid: str  # the id this party knows the call by: the caller's temporary id until ringing
    media: Leg
    wire_ids: set[str] = field(default_factory=set)  # every id the party may use (TJS..., CA...)
    reconnect_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    grace_timer: asyncio.TimerHandle | None = None
    identity: str | None = None  # of the party: it may hang up from a new socket in the grace

    def __post_init__(self) -> None:
        if self.session is not None:
            self.identity = self.session.identity

    def send(self, type_: str, **payload: Any) -> None:
        if self.session is not None:
            self.session.send(type_, **payload)


@dataclass(eq=False)
class ExchangeCall:
    sid: str
    route: Route
    caller: CallLeg | None = None
    forks: list[CallLeg] = field(default_factory=list)
    callee: CallLeg | None = None  # the fork that answered, or the line's leg
    phase: Phase = Phase.SETUP
    ring_timer: asyncio.TimerHandle | None = None
    digits: TaskSet = field(default_factory=lambda: TaskSet("digit relay"))

    def other(self, leg: CallLeg) -> CallLeg | None:
        return self.callee if leg is self.caller else self.caller


class CallTable:
    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.config = exchange.config
        self.calls: set[ExchangeCall] = set()
        self._legs: dict[str, CallLeg] = {}  # wire id -> leg
        self._by_token: dict[str, CallLeg] = {}
        self._tasks = TaskSet(self)

    # --- frames ------------------------------------------------------------------------
    def handle(self, session: ClientSession, frame: protocol.Frame) -> None:
        payload = frame.payload
        if frame.type == "invite":
            if payload.get("reconnect"):
                self._resume(session, payload)
            else:
                self._place(session, payload)
            return
        leg = self._legs.get(payload.get("callsid", ""))
        if (frame.type == "hangup" and leg is not None and leg.session is None
                and leg.identity == session.identity):
            # Hung up while cut off: the hangup comes on the new socket, before any resume.
            self._end(leg.call, hung_up_by=leg)
            return
        if leg is None or leg.session is not session:
            # A hangup or cancel for an unknown call is ignored, as at Twilio.
            log.info("%s: %s for unknown call %s ignored", session, frame.type,
                     payload.get("callsid"))
            return
        handler = {
            "answer": self._answer,
            "reject": self._reject,
            "hangup": self._hangup,
            "dtmf": self._dtmf,
            "reinvite": self._reinvite,
            "message": self._message,
        }.get(frame.type)
        if handler is not None:
            handler(leg, payload)

    # --- placing a call ------------------------------------------------------------------
    def _place(self, session: ClientSession, payload: dict[str, Any]) -> None:
        # Checked and filed at once, not in a task: a hangup that follows the invite closely
        # (the caller gave up at once) must find the call, and two invites must not both pass
        # the capacity check.
        temp_id = payload["callsid"]
        twilio = payload.get("twilio") or {}
        params = protocol.decode_params(twilio.get("params") if isinstance(twilio, dict) else "")
        to = params.get("To")

        def refuse(code: int, message: str) -> None:
            log.info("%s: call to %r refused: %s", session, to, message)
            session.send("hangup", callsid=temp_id, error={"code": code, "message": message})

        if session.grant is None or not session.grant.outgoing_allowed:
            return refuse(*auth.OUTGOING_REFUSED)
        route = self.exchange.dial_plan.resolve(to)
        if route is None:
            return refuse(31404, f"no route to {to!r}: not an identity, line or known number")
        active = [c for c in self.calls if c.phase is not Phase.ENDED]
        if len(active) >= self.config.max_calls:
            return refuse(31005, f"the exchange is at capacity ({self.config.max_calls} calls)")
        forks: list[ClientSession] = []
        if route.kind == "client":
            registered = [s for s in self.exchange.registrations.of(route.target)
                          if s is not session]
            if not registered:
                return refuse(31480, f"{route.target} is not registered")
            forks = [s for s in registered if not self._busy(s)]
            if not forks:
                return refuse(31486, f"{route.target} is busy")

        call = ExchangeCall(sid=new_call_sid(), route=route)
        # Answer in the caller's order of preference, as Twilio's edge does (the SDK puts
        # PCMU first): the caller's codec is the first it offered that we take.
        settings = self.exchange.media_settings
        offered = [c for c in codecs_of(payload["sdp"]) if c in settings.codec_preferences]
        if offered:
            settings = replace(settings, codec_preferences=tuple(offered))
        caller_media = (lines.answer_leg(route.target, settings) if route.kind == "line"
                        else Leg(settings))
        caller = CallLeg(call, session, temp_id, caller_media, wire_ids={temp_id, call.sid})
        call.caller = caller
        self._add(call, caller)
        self.exchange.records.started(call, session.identity, temp_id)
        self._tasks.spawn(self._set_up(call, temp_id, payload["sdp"], params, forks))

    async def _set_up(self, call: ExchangeCall, temp_id: str, sdp: str,
                      params: dict[str, str], forks: list[ClientSession]) -> None:
        """Media for the caller's leg, then ring the forks (or answer for a line)."""
        caller, route = call.caller, call.route
        assert caller is not None
        try:
            await caller.media.media.prepare_answer(sdp)
        except NoIceCandidate as exc:  # the exchange's own network, not the caller's SDP
            self._end(call, caller_error=(53405, f"the exchange has {exc}"))
            return
        except MediaError as exc:
            self._end(call, caller_error=(31100, f"malformed SDP: {exc}"))
            return
        if call.phase is Phase.ENDED:
            return
        if route.kind == "line":
            call.callee = None
            call.phase = Phase.RINGING
            self._ring_caller(call)
            await self._answer_caller(call)
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
            self._end(call, caller_error=(31480, f"{route.target} could not be reached"))
            return
        call.phase = Phase.RINGING
        self._ring_caller(call)
        call.ring_timer = asyncio.get_running_loop().call_later(
            self.config.ring_timeout, self._ring_timeout, call)

    def _ring_caller(self, call: ExchangeCall) -> None:
        """Tell the caller it rings; from here on it knows the call by its CallSid."""
        assert call.caller is not None
        call.caller.sid = call.sid
        call.caller.send("ringing", callsid=call.sid)

    async def _fork(self, call: ExchangeCall, session: ClientSession,
                    custom: dict[str, str], settings: MediaSettings) -> None:
        assert call.caller is not None and call.caller.session is not None
        child_sid = new_call_sid()
        leg = CallLeg(call, session, child_sid, Leg(settings),
                      wire_ids={child_sid})
        try:
            sdp = await leg.media.media.offer()
        except MediaError as exc:
            log.error("could not offer to %s: %s", session, exc)
            await leg.media.close()
            return
        if call.phase is Phase.ENDED:
            await leg.media.close()
            return
        call.forks.append(leg)
        self._add(call, leg)
        self.exchange.records.forked(call, child_sid)
        caller_identity = call.caller.session.identity
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

    def _busy(self, session: ClientSession) -> bool:
        for call in self.calls:
            if call.phase is Phase.ENDED:
                continue
            for leg in (call.caller, call.callee):
                if leg is not None and leg.session is session:
                    return True
        return False

    # --- answering -------------------------------------------------------------------------
    def _answer(self, leg: CallLeg, payload: dict[str, Any]) -> None:
        call = leg.call
        if call.phase is not Phase.RINGING or leg not in call.forks:
            log.info("answer for %s ignored: call is %s", leg.sid, call.phase.value)
            return
        call.callee = leg
        call.phase = Phase.ANSWERED
        if call.ring_timer is not None:
            call.ring_timer.cancel()
        for other in list(call.forks):
            if other is not leg:
                other.send("cancel", callsid=other.sid)
                self._drop(other)
        call.forks = []
        self._tasks.spawn(self._connect_answer(call, leg, payload["sdp"]))

    async def _connect_answer(self, call: ExchangeCall, leg: CallLeg, sdp: str) -> None:
        try:
            await leg.media.media.apply_answer(sdp)
        except MediaError as exc:
            leg.send("error", **protocol.error_payload(31100, f"malformed SDP: {exc}", leg.sid))
            self._end(call, caller_error=(53405, "the callee's media could not be set up"))
            return
        await self._answer_caller(call)
        if call.phase is not Phase.ENDED and call.caller is not None:
            mode = bridge(call.caller.media, leg.media)
            log.info("call %s: audio %s (%s / %s)", call.sid, mode, call.caller.media.codec,
                     leg.media.codec)

    async def _answer_caller(self, call: ExchangeCall) -> None:
        caller = call.caller
        assert caller is not None
        sdp = await caller.media.media.answer()
        if call.phase is Phase.ENDED:
            return
        call.phase = Phase.ANSWERED
        self.exchange.records.answered(call)
        caller.send("answer", callsid=call.sid, sdp=sdp, reconnect=caller.reconnect_token)
        log.info("call %s answered (%s)", call.sid, call.route.to)

    def _reject(self, leg: CallLeg, payload: dict[str, Any]) -> None:
        call = leg.call
        if call.phase is not Phase.RINGING or leg not in call.forks:
            return
        # A decline ends every fork (SIP 603), as Twilio does; the decliner is told nothing more.
        self._end(call, hung_up_by=leg, caller_error=(31603, "the callee declined the call"))

    def _ring_timeout(self, call: ExchangeCall) -> None:
        if call.phase is Phase.RINGING:
            self._end(call, caller_error=(31480, "no answer"))

    # --- hanging up --------------------------------------------------------------------------
    def _hangup(self, leg: CallLeg, payload: dict[str, Any]) -> None:
        call = leg.call
        if leg in call.forks and call.phase is Phase.RINGING:
            self._drop(leg)  # this device stops ringing; others may still answer
            call.forks.remove(leg)
            if not call.forks:
                self._end(call, caller_error=(31480, "no device answered"))
            return
        self._end(call, hung_up_by=leg)

    def _end(self, call: ExchangeCall, *, hung_up_by: CallLeg | None = None,
             caller_error: tuple[int, str] | None = None) -> None:
        """End the call: tell every party that did not end it, close all media."""
        if call.phase is Phase.ENDED:
            return
        was_ringing = call.phase in (Phase.SETUP, Phase.RINGING)
        call.phase = Phase.ENDED
        if call.ring_timer is not None:
            call.ring_timer.cancel()
        call.digits.cancel()
        for fork in call.forks:
            if fork is not hung_up_by:
                fork.send("cancel", callsid=fork.sid)
        if call.callee is not None and call.callee is not hung_up_by:
            call.callee.send("hangup", callsid=call.callee.sid)
        caller = call.caller
        if caller is not None and caller is not hung_up_by:
            payload: dict[str, Any] = {"callsid": caller.sid}
            if caller_error is not None:
                payload["error"] = {"code": caller_error[0], "message": caller_error[1]}
            caller.send("hangup", **payload)
        log.info("call %s ended (%s)", call.sid,
                 "ringing" if was_ringing else f"by {hung_up_by.sid if hung_up_by else 'exchange'}")
        self.exchange.records.ended(
            call, answered=not was_ringing, error_code=caller_error[0] if caller_error else None,
            error=f"{caller_error[0]} {caller_error[1]}" if caller_error else None,
            caller_hung_up=hung_up_by is not None and hung_up_by is caller)
        for leg in (call.caller, call.callee, *call.forks):
            if leg is not None:
                self._drop(leg)
        self.calls.discard(call)

    def _drop(self, leg: CallLeg) -> None:
        for wire_id in leg.wire_ids:
            if self._legs.get(wire_id) is leg:
                del self._legs[wire_id]
        self._by_token.pop(leg.reconnect_token, None)
        if leg.grace_timer is not None:
            leg.grace_timer.cancel()
        self._tasks.spawn(leg.media.close())

    # --- digits and messages -------------------------------------------------------------------
    def _dtmf(self, leg: CallLeg, payload: dict[str, Any]) -> None:
        call = leg.call
        digits = payload["dtmf"]
        if call.phase is not Phase.ANSWERED:
            return
        if any(c not in "0123456789*#w" for c in digits):
            leg.send("error", **protocol.error_payload(
                31100, f"dtmf may only hold 0-9 * # w, got {digits!r}", leg.sid))
            return
        other = call.other(leg)
        if other is None:
            log.info("call %s: digits %s to line %s", call.sid, digits, call.route.target)
            return
        call.digits.spawn(self._relay_digits(other, digits))

    async def _relay_digits(self, leg: CallLeg, digits: str) -> None:
        # A browser sends "12w3" in one frame: honour each w as a 500 ms pause.
        for index, group in enumerate(digits.split("w")):
            if index:
                await asyncio.sleep(0.5)
            if group:
                leg.send("dtmf", callsid=leg.sid, dtmf=group)

    def _message(self, leg: CallLeg, payload: dict[str, Any]) -> None:
        event = payload.get("voiceeventsid")
        other = leg.call.other(leg)
        if other is not None:
            other.send("message", **{**payload, "callsid": other.sid})
        if isinstance(event, str):
            leg.send("ack", callsid=leg.sid, acktype="message", voiceeventsid=event)

    def _reinvite(self, leg: CallLeg, payload: dict[str, Any]) -> None:
        """A client restarts its media: a new peer connection for this leg only (aiortc has
        no ICE restart). The far leg is untouched; it hears silence until the bridge is back."""
        call = leg.call
        if call.phase is not Phase.ANSWERED or leg not in (call.caller, call.callee):
            leg.send("error", **protocol.error_payload(
                31005, f"reinvite of a call that is {call.phase.value}", leg.sid))
            return
        settings = leg.media.media.settings
        offered = [c for c in codecs_of(payload["sdp"]) if c in self.config.codec_preferences]
        if not offered:  # garbage, or nothing we take: keep the leg as it is
            leg.send("error", **protocol.error_payload(
                31100, "malformed SDP: reinvite offers no audio codec in common", leg.sid))
            return
        current = leg.media.codec
        # Keep the leg's codec when the client still offers it: the bridge keeps forwarding.
        prefs = (current,) if current in offered else tuple(offered)
        settings = replace(settings, codec_preferences=prefs)
        old = leg.media
        line = call.route.kind == "line" and leg is call.caller
        leg.media = lines.answer_leg(call.route.target, settings) if line else Leg(settings)
        self._tasks.spawn(old.close())  # lost already: the client has closed its side
        self._tasks.spawn(self._restart_media(call, leg, leg.media, payload["sdp"]))

    async def _restart_media(self, call: ExchangeCall, leg: CallLeg, media: Leg,
                             sdp: str) -> None:
        try:
            await media.media.prepare_answer(sdp)
            answer = await media.media.answer()
        except MediaError as exc:
            if call.phase is not Phase.ENDED and leg.media is media:  # else closed under it
                leg.send("error", **protocol.error_payload(31100, f"malformed SDP: {exc}",
                                                           leg.sid))
            return
        if call.phase is Phase.ENDED or leg.media is not media:
            return  # ended, or a newer reinvite replaced this one (its media closes it)
        leg.send("answer", callsid=leg.sid, sdp=answer)
        other = call.other(leg)
        if other is not None:
            mode = bridge(media, other.media)
            log.info("call %s: %s restarted its media; audio %s", call.sid, leg.sid, mode)

    # --- lost and resumed sessions --------------------------------------------------------------
    def session_closed(self, session: ClientSession) -> None:
        for leg in {leg for leg in self._legs.values() if leg.session is session}:
            call = leg.call
            if call.phase is Phase.ANSWERED and leg in (call.caller, call.callee):
                leg.session = None
                grace = self.config.reconnect_grace
                log.info("call %s: %s lost its socket; waiting %.0f s for it", call.sid,
                         leg.sid, grace)
                leg.grace_timer = asyncio.get_running_loop().call_later(
                    grace, self._grace_over, leg)
            elif leg in call.forks:
                self._hangup(leg, {})
            else:
                self._end(call, hung_up_by=leg)

    def _grace_over(self, leg: CallLeg) -> None:
        if leg.session is None:
            log.info("call %s: %s did not come back", leg.call.sid, leg.sid)
            self._end(leg.call, hung_up_by=leg)

    def _resume(self, session: ClientSession, payload: dict[str, Any]) -> None:
        leg = self._by_token.get(payload["reconnect"])
        if leg is None or leg.call.phase is not Phase.ANSWERED:
            session.send("hangup", callsid=payload["callsid"],
                         error={"code": 31005, "message": "the call to resume has ended"})
            return
        if leg.grace_timer is not None:
            leg.grace_timer.cancel()
        leg.session = session
        local = leg.media.media.pc.localDescription
        log.info("call %s: %s resumed", leg.call.sid, leg.sid)
        session.send("answer", callsid=leg.sid, sdp=local.sdp if local else "",
                     reconnect=leg.reconnect_token)

    # --- bookkeeping -----------------------------------------------------------------------------
    def _add(self, call: ExchangeCall, leg: CallLeg) -> None:
        self.calls.add(call)
        for wire_id in leg.wire_ids:
            self._legs[wire_id] = leg
        self._by_token[leg.reconnect_token] = leg

    async def close(self) -> None:
        for call in list(self.calls):
            self._end(call)
        await self._tasks.wait(timeout=5)
