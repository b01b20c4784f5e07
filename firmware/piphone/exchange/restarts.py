"""What keeps an answered leg going at the exchange: media restarts and signaling resumes.

- ``reinvite``: a client restarts its media (a new peer connection for this leg only: aiortc
  has no ICE restart). One is answered at a time per leg (31005 while one is), and at most
  ``reinvites_per_minute`` of them (31206, the SDK's RateExceededError); the leg stays as it is.
- A reconnect ``invite``: a client whose socket closed mid-call resumes its leg with the
  reconnect token from its ``answer``. Only the leg's own identity may, and only while the leg
  is cut off (in its grace); else it is refused (31209, the SDK's ReconnectAttemptError; 31005
  for a call that has ended) and the live leg is untouched. A resume that carries the SDP the
  leg already has keeps its media (a socket that came back); one with a new offer (another ICE
  ufrag or DTLS fingerprint: a Device given the call's connect token, or the phone's process
  started again) gets new media, as a reinvite does (and counts as one), answered in the
  resume's ``answer``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ..logsafe import quoted
from ..voice import protocol
from .legs import CallLeg, ExchangeCall, Party, Phase
from .lifetime import CallBook
from .media import LegMedia, MediaBridge, MediaError

log = logging.getLogger(__name__)

RATE_WINDOW = 60.0  # seconds over which reinvites_per_minute counts


class Restarts:
    def __init__(self, book: CallBook, media: MediaBridge) -> None:
        self.book = book
        self.media = media

    # --- media restarts ------------------------------------------------------------------------
    def reinvite(self, leg: CallLeg, payload: dict[str, Any]) -> None:
        """The far leg is untouched; it hears silence until the bridge is back."""
        call = leg.call

        def refuse(code: int, message: str) -> None:
            leg.send("error", **protocol.error_payload(code, message, leg.sid))

        if call.phase is not Phase.ANSWERED or leg not in call.parties():
            return refuse(31005, f"reinvite of a call that is {call.phase.value}")
        if leg.restarting:
            return refuse(31005, "a media restart of this call is under way; one at a time")
        now, limit = time.monotonic(), self.book.limits.reinvites_per_minute
        if self._over_rate(leg):
            log.info("call %s: reinvite of %s refused: over %d per minute", call.sid, leg.id,
                     limit)
            return refuse(31206, f"more than {limit} media restarts per minute")
        offered = self.media.taken(payload["sdp"])
        if not offered:  # garbage, or nothing we take: keep the leg as it is
            return refuse(31100, "malformed SDP: reinvite offers no audio codec in common")
        leg.reinvites.append(now)
        self._new_media(leg, offered, payload["sdp"], reconnect=None)

    def _over_rate(self, leg: CallLeg) -> bool:
        """Whether the leg had ``reinvites_per_minute`` media restarts in the last minute."""
        now = time.monotonic()
        while leg.reinvites and now - leg.reinvites[0] >= RATE_WINDOW:
            leg.reinvites.popleft()
        return len(leg.reinvites) >= self.book.limits.reinvites_per_minute

    def _new_media(self, leg: CallLeg, offered: tuple[str, ...], sdp: str,
                   reconnect: str | None) -> None:
        """Replace the leg's media with a session answering ``sdp`` (its answer goes to the
        client, with ``reconnect`` when it answers a resume)."""
        call = leg.call
        line = call.route.target if call.route.kind == "line" and leg is call.caller else None
        old = leg.media
        leg.media = self.media.for_restart(old, offered, line)
        leg.restarting = True
        self.book.tasks.spawn(old.close())  # lost already: the client has closed its side
        self.book.await_media(leg, restart=True)  # the new media has its bound too
        call.work.spawn(self._restart_media(call, leg, leg.media, sdp, reconnect))

    async def _restart_media(self, call: ExchangeCall, leg: CallLeg, media: LegMedia,
                             sdp: str, reconnect: str | None = None) -> None:
        try:
            await media.prepare_answer(sdp)
            answer = await media.answer()
        except Exception as exc:  # MediaError, or aiortc's own on an offer it cannot take
            if call.phase is not Phase.ENDED and leg.media is media:  # else closed under it
                if not isinstance(exc, MediaError):
                    log.info("call %s: reinvite of %s failed: %s", call.sid, leg.id, quoted(exc))
                leg.send("error", **protocol.error_payload(
                    31100, f"malformed SDP: {quoted(exc, 200)}", leg.sid))
            return
        finally:
            leg.restarting = False
        if call.phase is Phase.ENDED or leg.media is not media:
            return
        leg.send("answer", callsid=leg.sid, sdp=answer,
                 **({"reconnect": reconnect} if reconnect is not None else {}))
        if call.mixer is not None:  # a conference: mixed again, with the new media
            self.media.mix(call.mixer, [party.media for party in call.parties()])
            return
        other = call.other(leg)
        if other is not None:
            try:
                mode = self.media.join(media, other.media)
            except Exception:  # aiortc state that cannot be read: the leg stays silent
                log.exception("call %s: could not bridge %s again", call.sid, leg.id)
                return
            log.info("call %s: %s restarted its media; audio %s", call.sid, leg.id, mode)

    # --- signaling resumes ---------------------------------------------------------------------
    def resume(self, session: Party, payload: dict[str, Any]) -> None:
        def refuse(code: int, message: str) -> None:
            session.send("hangup", callsid=payload["callsid"],
                         error={"code": code, "message": message})

        leg = self.book.legs.by_token(payload["reconnect"])
        if leg is None or leg.call.phase is not Phase.ANSWERED:
            return refuse(31005, "there is no call to resume")
        if leg.identity != session.identity or leg.session is not None:
            # Another identity's leg, or one whose own socket is still there: the SDK's
            # ReconnectAttemptError, the same for both (the log says which).
            log.info("%s: resume of %s refused: %s", session, leg.id,
                     "another identity's" if leg.identity != session.identity
                     else "its own socket is still open")
            return refuse(31209, "reconnect attempt is not authorized")
        new_offer = _session_of(payload["sdp"]) != _session_of(leg.media.remote_sdp())
        offered = self.media.taken(payload["sdp"]) if new_offer else ()
        if new_offer and not offered:  # the leg stays cut off, in its grace
            return refuse(31100, "malformed SDP: the resume offers no audio codec in common")
        if new_offer and (leg.restarting or self._over_rate(leg)):
            return refuse(31206, "too many media restarts of this call")
        if leg.grace_timer is not None:
            leg.grace_timer.cancel()
            leg.grace_timer = None
        leg.temp_id = None  # meant something on the old connection only
        self.book.legs.attach(leg, session)
        log.info("call %s: %s resumed%s", leg.call.sid, leg.id,
                 " with new media" if new_offer else "")
        if new_offer:
            leg.reinvites.append(time.monotonic())
            self._new_media(leg, offered, payload["sdp"], reconnect=leg.reconnect_token)
            return
        sdp = leg.media.local_sdp()  # "" if unreadable (logged): the media is as it was
        session.send("answer", callsid=leg.sid, sdp=sdp, reconnect=leg.reconnect_token)


def _session_of(sdp: str) -> frozenset[str]:
    """What tells one peer connection from another in its SDP: its ICE credentials' ufrag and
    its DTLS fingerprint (a new RTCPeerConnection has new ones)."""
    return frozenset(line.strip() for line in sdp.splitlines()
                     if line.startswith(("a=ice-ufrag:", "a=fingerprint:")))
