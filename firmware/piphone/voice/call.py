"""Call: the Twilio.Call API in Python (snake_case), its statuses and events.

Events (pyee, the SDK's names): ``accept(call)``, ``cancel()``, ``disconnect(call)``,
``error(TwilioError)``, ``mute(is_muted, call)``, ``reject()``, ``ringing(has_early_media)``,
``reconnecting(TwilioError)``, ``reconnected()``, ``messageSent``/``messageReceived(message)``
(messages.py); piphone adds ``dtmf(digits)``, ``hold(on, call)`` (``hold()``) and ``status``.

What moves a call, what it sends then and what it emits in which order (the SDK's) is one
table, ``TRANSITIONS`` in voice/call_states.py, which ``_fire`` follows: the one place the
status changes. Reconnection's policy (timers, the RTP watchdog, backoff) is voice/reconnect.py;
media is reached only through the media port (voice/rtc/ports.py): the call's audio, one
``CallAudioPort`` from ``media_factory`` (voice/call_media.py), makes each ``MediaPort``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .. import dtmf
from ..errors import InvalidArgumentError
from ..pcm import LevelReading
from . import call_media, call_states, insights, protocol
from . import connect_token as connect_tokens
from .call_states import CallEvent, Facts, Trigger
from .call_states import CallStatus as CallStatus  # re-exported: the SDK's statuses
from .errors import TwilioError
from .events import Emitter
from .messages import CallMessages
from .ports import MediaFactory, SendFrame
from .quality import QualityMonitor, QualitySettings
from .reconnect import CallHooks, CallReconnection, ReconnectSettings
from .rtc import MediaError, MediaSettings, NetworkReport
from .rtc.ports import CallAudioPort, Counters, MediaPort
from .rtc.tracks import AudioSink, AudioSource, AudioStream
from .samples import EchoStats
from .tasks import TaskSet

log = logging.getLogger(__name__)

VERIFIED_STIR = "TN-Validation-Passed-A"


class CallDirection(enum.StrEnum):
    INCOMING = "INCOMING"
    OUTGOING = "OUTGOING"


class Call(Emitter):
    def __init__(
        self,
        *,
        direction: CallDirection,
        send: SendFrame,
        media_settings: MediaSettings,
        source: AudioSource,
        sink: AudioSink,
        parameters: dict[str, str] | None = None,
        custom_parameters: dict[str, str] | None = None,
        offer_sdp: str | None = None,
        reconnect_token: str | None = None,
        quality: QualitySettings | None = None,
        reconnect_settings: ReconnectSettings | None = None,
        publish_feedback: Callable[[Call, int | None, str | None], asyncio.Task[bool]]
        | None = None,
        media_factory: MediaFactory = call_media.call_audio,
        echo_stats: Callable[[], EchoStats | None] | None = None,
    ) -> None:
        super().__init__()
        self.direction = direction
        self._send = send
        self._media_settings = media_settings
        # What it sends and hears, across its media sessions (the port: rtc.CallAudioPort).
        self._audio: CallAudioPort = media_factory(source, sink)
        self.parameters: dict[str, str] = dict(parameters or {})
        self.custom_parameters: dict[str, str] = dict(custom_parameters or {})
        self._offer_sdp = offer_sdp
        self._reconnect_token = reconnect_token
        # Outgoing calls have a temporary id until the server names the real CallSid.
        self.outbound_connection_id = (
            f"TJS{uuid.uuid4()}" if direction is CallDirection.OUTGOING else None
        )
        self._status = (
            CallStatus.PENDING if direction is CallDirection.INCOMING else CallStatus.CONNECTING
        )
        # What the table's conditions look at besides the status (call_states.Facts).
        self._answered = False  # the far end (or we) answered
        self._media_lost = False
        self._signaling_lost = False
        self._media: MediaPort | None = None
        self._local_sdp = ""  # of the current media session: what a resume invite carries
        self._tasks = TaskSet(self, expected=(MediaError,))  # media failures end as events
        self._closed = asyncio.Event()
        self._prepared: asyncio.Task[None] | None = None
        self._digits_lock = asyncio.Lock()
        self._publish_feedback = publish_feedback  # Device: Insights event (insights.py)
        self.feedback: dict[str, Any] | None = None
        self.messages = CallMessages(send=send, call_sid=lambda: self.call_sid, emit=self.emit,
                                     closed=lambda: self._status is CallStatus.CLOSED)
        # sample / volume / warning (quality.py): runs while the call is open or reconnecting.
        self.quality = QualityMonitor(
            quality or QualitySettings(), read_counters=self._quality_counters,
            meters=self._meters, is_muted=self.is_muted, emit=self.emit, echo=echo_stats)
        self.on("status", lambda s: self.quality.start() if s is CallStatus.OPEN
                else self.quality.stop() if s is CallStatus.CLOSED else None)
        # aiortc has no ICE "disconnected": media lost (reconnect.py, 53405) stands for it.
        self.on("reconnecting", lambda error: self.quality.media_state("disconnected")
                if getattr(error, "code", None) == 53405 else None)
        self.on("reconnected", lambda: self.quality.media_state("connected"))
        self._reconnection = CallReconnection(
            reconnect_settings or ReconnectSettings(),
            CallHooks(fire=self._fire, send=self._send, new_media=self._new_media,
                      sid=lambda: self.sid, local_sdp=lambda: self._local_sdp,
                      token=lambda: self._reconnect_token))

    # --- properties of the SDK -----------------------------------------------------------
    @property
    def call_sid(self) -> str | None:
        return self.parameters.get("CallSid")

    @property
    def sid(self) -> str | None:
        """The id frames use: the CallSid once known, else the temporary outbound id."""
        return self.call_sid or self.outbound_connection_id

    @property
    def codec(self) -> str:
        """'opus' or 'pcmu' once negotiated, else ''."""
        return (self._media.codec if self._media is not None else None) or ""

    @property
    def caller_info(self) -> dict[str, bool] | None:
        stir = self.parameters.get("StirStatus")
        return None if stir is None else {"is_verified": stir == VERIFIED_STIR}

    @property
    def connect_token(self) -> str | None:
        """The SDK's connect token (voice/connect_token.py): a secret, never log it."""
        return connect_tokens.encode(self.parameters, self.custom_parameters,
                                     self._reconnect_token)

    def status(self) -> CallStatus:
        return self._status

    def is_muted(self) -> bool:
        return self._audio.muted

    def get_local_stream(self) -> AudioStream:
        """What we send (silence while muted): a copy that lasts the call."""
        return self._audio.local_stream()

    def get_remote_stream(self) -> AudioStream | None:
        """What we hear once it came (else None), across reconnections, as the SDK's does."""
        return self._audio.remote_stream()

    # --- methods of the SDK --------------------------------------------------------------
    def accept(
        self,
        rtc_configuration: dict[str, Any] | None = None,
        rtc_constraints: dict[str, Any] | None = None,
    ) -> asyncio.Task[None] | None:
        """Answer a pending incoming call. Returns the task that sets media up (awaitable).

        ``rtc_configuration`` may carry ``ice_servers``/``iceServers`` (new ICE gathering);
        ``rtc_constraints={"audio": False}`` answers without sending the source's audio.
        """
        if not self._fire(CallEvent.ACCEPT):
            return None
        if rtc_constraints and rtc_constraints.get("audio") is False:
            self._audio.muted = True
        return self._tasks.spawn(self._accept(rtc_configuration))

    def reject(self) -> None:
        self._fire(CallEvent.REJECT)

    def ignore(self) -> None:  # stop ringing here, not telling the caller (others may answer)
        self._fire(CallEvent.IGNORE)

    def disconnect(self) -> None:
        self._fire(CallEvent.HANGUP)

    def mute(self, should_mute: bool = True) -> None:
        if self._audio.muted != bool(should_mute):
            self._audio.muted = bool(should_mute)
            self.emit("mute", bool(should_mute), self)

    def hold(self, on: bool = True) -> None:
        """piphone extension (the SDK has no hold): the far end hears the phone's hold music
        instead of our source, and what it sends is not played; ``hold(False)`` resumes."""
        if self._audio.held != bool(on):
            self._audio.held = bool(on)
            self.emit("hold", bool(on), self)

    def is_on_hold(self) -> bool:
        return self._audio.held

    def transfer(self, to: str | None = None, joining: Call | None = None,
                 conference: bool = False) -> None:
        """piphone's, on its exchange (protocol.py): the far end goes on to ``to`` or to
        ``joining``'s far end, or (``conference``) the three talk; an error event: not."""
        target = {"with": joining.sid} if joining is not None else {"to": to}
        self._send("conference" if conference else "transfer", {"callsid": self.sid, **target})

    def send_digits(self, digits: str) -> asyncio.Task[None]:
        """Send DTMF as ``dtmf`` frames; each ``w`` waits 500 ms. Returns the sending task."""
        if not isinstance(digits, str) or not dtmf.DIGITS.fullmatch(digits):
            raise InvalidArgumentError(
                f"send_digits takes only the characters 0-9 * # w, got {digits!r}"
            )
        if self._status is not CallStatus.OPEN:
            raise TwilioError(31000, f"cannot send digits while the call is {self._status}")
        return self._tasks.spawn(self._send_digit_groups(digits))

    def post_feedback(self, score: int | None = None,
                      issue: str | None = None) -> asyncio.Task[bool] | None:
        """Post call feedback (score 1-5, issue one of insights.FEEDBACK_ISSUES; none =
        declined) as Twilio's SDK does: an Insights event to the event gateway (insights.py).
        Returns the posting task (its result: delivered or not); it never affects the call."""
        insights.check_feedback(score, issue)
        self.feedback = {"score": score, "issue": issue}
        self.emit("feedback", score, issue)  # piphone: the call log keeps it
        if self._publish_feedback is None:
            return None
        return self._publish_feedback(self, score, issue)

    def send_message(self, message: Mapping[str, Any]) -> str:
        """The SDK's sendMessage: returns the message's voice event SID (messages.py)."""
        return self.messages.send(message)

    def set_condition(self, name: str, active: bool, data: dict[str, Any] | None = None) -> None:
        """Raise (``warning``) or clear a condition, e.g. ``audio-device-lost`` (piphone's)."""
        self.quality.set_condition(name, active, data)

    async def _quality_counters(self) -> Counters | None:
        return await self._media.counters() if self._media is not None else None

    def _meters(self) -> tuple[LevelReading, LevelReading] | None:
        media = self._media
        if media is None or media.input_meter is None or media.output_meter is None:
            return None
        return media.input_meter, media.output_meter

    def network_report(self) -> NetworkReport | None:
        """ICE/DTLS timings and candidates of the current media (a preflight's report)."""
        return self._media.network() if self._media is not None else None

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # --- what the Device tells its call -----------------------------------------------------
    async def start_outgoing(self, params: str) -> None:
        """Offer (gathers ICE) and send the invite (a resume, for a call made from a connect
        token); TwilioError 31000 (and the call failed) if the media cannot start."""
        self._media = self._new_media()
        try:
            sdp = await self._media.offer()
        except MediaError as exc:
            self._fail(31000, f"could not start the call's media: {exc}", exc)
            raise TwilioError(31000, str(exc)) from exc
        if self._status is CallStatus.CLOSED:
            return
        self._local_sdp = sdp
        self._send("invite", connect_tokens.invite(self.sid, sdp, params, self._reconnect_token))

    def prepare_incoming(self, gather: bool = True) -> asyncio.Task[None]:
        """Check the offer; by default also apply it and gather ICE while the call rings.
        The task fails with MediaError if the offer is unusable."""
        self._media = self._new_media()
        if gather:
            self._prepared = self._tasks.spawn(self._unless_closed(
                self._media.prepare_answer(self._offer_sdp or "")))
            return self._prepared
        return self._tasks.spawn(self._unless_closed(
            self._media.check_offer(self._offer_sdp or "")))

    def matches(self, callsid: str | None) -> bool:
        return callsid is not None and callsid in (self.call_sid, self.outbound_connection_id)

    def handle_frame(self, frame: protocol.Frame) -> None:
        """A frame the Device routed to this call."""
        kind, payload = frame.type, frame.payload
        if self.messages.handle(frame):  # ack, message, a message's error
            return
        if kind == "ringing":
            self._set_callsid(payload)
            self._fire(CallEvent.RINGING, early_media=bool(payload.get("sdp")))
        elif kind == "answer":
            if self._reconnection.on_answer(payload):
                return
            if self.direction is CallDirection.OUTGOING and self._status is not CallStatus.CLOSED:
                if isinstance(payload.get("reconnect"), str):
                    self._reconnect_token = payload["reconnect"]
                self._set_callsid(payload)
                if self._fire(CallEvent.ANSWER):  # not answered already
                    self._tasks.spawn(self._connect_answered(payload["sdp"]))
        elif kind == "cancel":
            self._fire(CallEvent.CANCEL)
        elif kind == "hangup":
            error = payload.get("error")
            self._fire(CallEvent.REMOTE_HANGUP,
                       error=TwilioError.from_frame(payload) if isinstance(error, dict) else None)
        elif kind == "dtmf":
            self.emit("dtmf", payload["dtmf"])
        elif kind == "error":
            self.emit("error", TwilioError.from_frame(payload))

    def signaling_lost(self) -> None:
        """The Device's socket dropped: resume later if the call can, else it ends."""
        row = call_states.find(self._status, CallEvent.SIGNALING_LOST, self._facts())
        resumes = row is not None and row.to is CallStatus.RECONNECTING
        self._fire(CallEvent.SIGNALING_LOST, error=TwilioError(53001, None if resumes else
                   "the signaling connection was lost before the call was answered"))

    def signaling_connected(self) -> None:
        """The Device's socket is back (``connected``): a call waiting resumes now."""
        self._reconnection.signaling_connected()

    def token_refused(self, error: TwilioError) -> None:
        """The server refused the Device's token: a call waiting to resume cannot."""
        self._fire(CallEvent.TOKEN_REFUSED, error=TwilioError(
            error.code, f"cannot resume the call: {error.message}", original_error=error))

    # --- the state table ---------------------------------------------------------------------
    def _facts(self) -> Facts:
        return Facts(outgoing=self.direction is CallDirection.OUTGOING,
                     answered=self._answered, has_token=self._reconnect_token is not None,
                     media_lost=self._media_lost, signaling_lost=self._signaling_lost)

    def _fire(self, event: CallEvent, *, error: TwilioError | None = None,
              media: MediaPort | None = None, sdp: str | None = None,
              token: str | None = None, early_media: bool = False) -> bool:
        """Move the call by its table (call_states.TRANSITIONS): the one place its status
        changes. True if a row took the event."""
        before = self._status
        row = call_states.find(before, event, self._facts())
        if row is None:
            log.debug("call %s: %s ignored while %s", self.sid, event, before)
            return False
        trigger = Trigger(error=error, media=media, sdp=sdp, token=token,
                          early_media=early_media)
        if "error" in row.emits and error is not None:
            self.emit("error", error)
            if self._status is not before:  # a listener ended the call meanwhile
                return True
        if row.do is not None:
            getattr(self, f"_{row.do}")(trigger)
        after = before if row.to is None else row.to
        if after is not before:
            log.info("call %s: %s -> %s (%s)", self.sid, before.value, after.value, event)
            self._status = after
            if after is CallStatus.CLOSED:
                self._tear_down()
            self.emit("status", after)
        for name in row.emits:
            if name != "error":
                self.emit(name, *call_states.SDK_EVENTS[name](self, trigger))
        return True

    # --- the table's steps (column "do") ------------------------------------------------------
    def _send_reject(self, trigger: Trigger) -> None:
        self._send("reject", {"callsid": self.sid})

    def _send_hangup(self, trigger: Trigger) -> None:
        message = {"message": trigger.error.message} if trigger.error is not None else {}
        self._send("hangup", {"callsid": self.sid, **message})

    def _note_answer(self, trigger: Trigger) -> None:
        self._answered = True

    def _watch_media(self, trigger: Trigger) -> None:
        assert self._media is not None
        self._reconnection.watch(self._media)  # from here on, lost media reconnects

    def _lose_media(self, trigger: Trigger) -> None:
        log.warning("call %s: %s; reconnecting", self.sid,
                    trigger.error.message if trigger.error else "media lost")
        self._media_lost = True
        if self._media is not None:  # kept as _media until a new one connects
            self._tasks.spawn(self._media.close())  # the exchange closes its side anyway
        self._reconnection.start_media()

    def _use_media(self, trigger: Trigger) -> None:
        assert trigger.media is not None
        self._media, self._media_lost = trigger.media, False
        self._local_sdp = trigger.sdp or self._local_sdp
        self._reconnection.watch(trigger.media)

    def _lose_signaling(self, trigger: Trigger) -> None:
        self._signaling_lost = True
        self._reconnection.start_signaling()

    def _resume(self, trigger: Trigger) -> None:
        self._signaling_lost = False
        self._reconnect_token = trigger.token or self._reconnect_token  # the newest resumes

    def _tear_down(self) -> None:
        """Entering closed: no more reconnection, audio or media (idempotent)."""
        self._reconnection.stop()
        self._audio.end()
        if self._media is not None:
            self._tasks.spawn(self._close_media(self._media))
        else:
            self._closed.set()

    # --- set-up ---------------------------------------------------------------------------
    async def _unless_closed(self, step: Awaitable[None]) -> None:
        """A media step whose failure matters only if the call did not close under it."""
        try:
            await step
        except MediaError:
            if self._status is not CallStatus.CLOSED:
                raise

    async def _accept(self, rtc_configuration: dict[str, Any] | None) -> None:
        try:
            assert self._media is not None
            settings = call_media.with_rtc_configuration(self._media_settings,
                                                         rtc_configuration)
            if settings is not None:  # other ICE servers: gather afresh with them
                await self._media.close()
                self._media_settings = settings
                self._media = self._new_media()
                self._prepared = None
            if self._prepared is None:
                await self._media.prepare_answer(self._offer_sdp or "")
            else:
                await self._prepared
            sdp = await self._media.answer()
            if not self._fire(CallEvent.ANSWER):
                return  # cancelled while we were answering
            self._local_sdp = sdp
            self._send("answer", {"callsid": self.sid, "sdp": sdp})
            await self._media.wait_connected()
        except (MediaError, ValueError) as exc:
            self._fail(53405, f"media could not be set up: {exc}", exc)
            return
        self._fire(CallEvent.MEDIA_CONNECTED)

    async def _connect_answered(self, sdp: str) -> None:
        assert self._media is not None
        try:
            await self._media.apply_answer(sdp)
            await self._media.wait_connected()
        except MediaError as exc:
            self._fail(53405, str(exc), exc)
            return
        self._fire(CallEvent.MEDIA_CONNECTED)

    def _set_callsid(self, payload: dict[str, Any]) -> None:
        callsid = payload.get("callsid")
        if isinstance(callsid, str) and callsid:
            self.parameters["CallSid"] = callsid

    # --- internals ---------------------------------------------------------------------------
    def _new_media(self) -> MediaPort:
        media: MediaPort | None = None

        def state(value: str) -> None:  # only the current session's changes count
            if media is self._media:
                self._media_state(value)

        media = self._audio.session(self._media_settings, on_state=state)
        if self.quality.settings.enabled:
            media.meter_levels(self.quality.audio_clock, self.quality.settings.volume_interval)
        return media

    def _media_state(self, state: str) -> None:
        self.quality.media_state(state)
        if state == "failed":  # aiortc's ICE failed: lost, if the call was up (the table)
            self._fire(CallEvent.MEDIA_LOST,
                       error=TwilioError(53405, "Media connection failed: ICE failed"))

    async def _send_digit_groups(self, digits: str) -> None:
        def send(group: str) -> None:
            if self._status is CallStatus.OPEN:
                self._send("dtmf", {"callsid": self.sid, "dtmf": group})

        async with self._digits_lock:
            await dtmf.send_with_pauses(digits, send)

    def _fail(self, code: int, message: str, original: object | None = None) -> None:
        if self._status is CallStatus.CLOSED:
            return
        log.warning("call %s failed: %s", self.sid, message)
        self._fire(CallEvent.ERROR, error=TwilioError(code, message, original_error=original))

    async def _close_media(self, media: MediaPort) -> None:
        try:
            await media.close()
        finally:
            self._tasks.cancel()
            self._closed.set()

    def __repr__(self) -> str:
        return f"<Call {self.sid} {self.direction.value} {self._status.value}>"

