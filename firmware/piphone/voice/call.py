"""Call: the Twilio.Call API in Python (snake_case), its statuses and events.

Events (pyee, the SDK's names): ``accept(call)``, ``cancel()``, ``disconnect(call)``,
``error(TwilioError)``, ``mute(is_muted, call)``, ``reject()``, ``ringing(has_early_media)``,
``reconnecting(TwilioError)``, ``reconnected()``; piphone adds ``dtmf(digits)`` for digits the
far end sent and ``status(status)`` for every change. Every status change goes through
``_set_status``, which logs it.

Ordering follows the SDK: ``accept`` fires once, when the call is open (media up) in both
directions; ``disconnect`` only for a call that was accepted or placed; ``cancel`` for an
incoming call cancelled or ignored, and for an outgoing call hung up locally before answer.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..errors import InvalidArgumentError
from . import protocol
from .errors import TwilioError
from .events import Emitter
from .quality import QualityMonitor, QualitySettings
from .reconnect import CallReconnection, ReconnectSettings
from .rtc import MediaError, MediaSettings, to_ice_servers
from .rtc.call_audio import CallAudio
from .rtc.ports import CallAudioPort, Counters, MediaPort
from .rtc.tracks import AudioSink, AudioSource, AudioStream
from .tasks import TaskSet

log = logging.getLogger(__name__)

FEEDBACK_ISSUES = (
    "dropped-call", "audio-latency", "one-way-audio", "choppy-audio", "noisy-call", "echo",
)
DIGITS = re.compile(r"[0-9*#w]*")
DIGIT_PAUSE = 0.5  # seconds per 'w'
VERIFIED_STIR = "TN-Validation-Passed-A"


class CallStatus(enum.StrEnum):
    PENDING = "pending"
    CONNECTING = "connecting"
    RINGING = "ringing"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class CallDirection(enum.StrEnum):
    INCOMING = "INCOMING"
    OUTGOING = "OUTGOING"


class Call(Emitter):
    def __init__(
        self,
        *,
        direction: CallDirection,
        send: Callable[[str, dict[str, Any]], bool],
        media_settings: MediaSettings,
        source: AudioSource,
        sink: AudioSink,
        parameters: dict[str, str] | None = None,
        custom_parameters: dict[str, str] | None = None,
        offer_sdp: str | None = None,
        reconnect_token: str | None = None,
        quality: QualitySettings | None = None,
        reconnect_settings: ReconnectSettings | None = None,
        publish_feedback: Callable[[Call, int | None, str | None], asyncio.Task] | None = None,
    ) -> None:
        super().__init__()
        self.direction = direction
        self._send = send
        self._media_settings = media_settings
        # What it sends and hears, across its media sessions (the port: rtc.CallAudioPort).
        self._audio: CallAudioPort = CallAudio(source, sink)
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
        self._media: MediaPort | None = None
        self._tasks = TaskSet(self, expected=(MediaError,))  # media failures end as events
        self._answered = False  # the far end (or we) answered
        self._was_connected = False
        self._closed = asyncio.Event()
        self._prepared: asyncio.Task | None = None
        self._digits_lock = asyncio.Lock()
        self._publish_feedback = publish_feedback  # Device: Insights event (insights.py)
        self.feedback: dict[str, Any] | None = None
        # sample / volume / warning (quality.py): runs while the call is open or reconnecting.
        self.quality = QualityMonitor(
            quality or QualitySettings(), read_counters=self._quality_counters,
            meters=lambda: (self._media.input_meter, self._media.output_meter)
            if self._media and self._media.input_meter and self._media.output_meter else None,
            is_muted=self.is_muted, emit=self.emit)
        self.on("status", lambda s: self.quality.start() if s is CallStatus.OPEN
                else self.quality.stop() if s is CallStatus.CLOSED else None)
        # aiortc has no ICE "disconnected": media lost (reconnect.py, 53405) stands for it.
        self.on("reconnecting", lambda error: self.quality.media_state("disconnected")
                if getattr(error, "code", None) == 53405 else None)
        self.on("reconnected", lambda: self.quality.media_state("connected"))
        self._reconnection = CallReconnection(self, reconnect_settings or ReconnectSettings())

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
        if stir is None:
            return None
        return {"is_verified": stir == VERIFIED_STIR}

    def status(self) -> CallStatus:
        return self._status

    def is_muted(self) -> bool:
        return self._audio.muted

    def get_local_stream(self) -> AudioStream:
        """What we send (silence while muted): a copy that lasts the call."""
        return self._audio.local_stream()

    def get_remote_stream(self) -> AudioStream | None:
        """What we hear, once the far end's audio arrived (else None): a copy that follows
        the call's current media across reconnections, as the SDK's stream survives them."""
        return self._audio.remote_stream()

    # --- methods of the SDK --------------------------------------------------------------
    def accept(
        self,
        rtc_configuration: dict[str, Any] | None = None,
        rtc_constraints: dict[str, Any] | None = None,
    ) -> asyncio.Task | None:
        """Answer a pending incoming call. Returns the task that sets media up (awaitable).

        ``rtc_configuration`` may carry ``ice_servers``/``iceServers`` (new ICE gathering);
        ``rtc_constraints={"audio": False}`` answers without sending the source's audio.
        """
        if self._status is not CallStatus.PENDING:
            log.debug("accept() ignored: status is %s", self._status)
            return None
        self._set_status(CallStatus.CONNECTING)
        if rtc_constraints and rtc_constraints.get("audio") is False:
            self._audio.muted = True
        return self._tasks.spawn(self._accept(rtc_configuration))

    def reject(self) -> None:
        if self._status is not CallStatus.PENDING:
            log.debug("reject() ignored: status is %s", self._status)
            return
        self._send("reject", {"callsid": self.sid})
        self._close()
        self.emit("reject")

    def ignore(self) -> None:
        """Stop ringing here without telling the caller (other devices may still answer)."""
        if self._status is not CallStatus.PENDING:
            log.debug("ignore() ignored: status is %s", self._status)
            return
        self._close()
        self.emit("cancel")

    def disconnect(self) -> None:
        if self._status not in (CallStatus.CONNECTING, CallStatus.RINGING, CallStatus.OPEN,
                                CallStatus.RECONNECTING):
            log.debug("disconnect() ignored: status is %s", self._status)
            return
        self._send("hangup", {"callsid": self.sid})
        cancelled = self.direction is CallDirection.OUTGOING and not self._answered
        self._close()
        self.emit("cancel") if cancelled else self.emit("disconnect", self)

    def mute(self, should_mute: bool = True) -> None:
        should_mute = bool(should_mute)
        if self._audio.muted == should_mute:
            return
        self._audio.muted = should_mute
        self.emit("mute", should_mute, self)

    def send_digits(self, digits: str) -> asyncio.Task:
        """Send DTMF as ``dtmf`` frames; each ``w`` waits 500 ms. Returns the sending task."""
        if not isinstance(digits, str) or not DIGITS.fullmatch(digits):
            raise InvalidArgumentError(
                f"send_digits takes only the characters 0-9 * # w, got {digits!r}"
            )
        if self._status is not CallStatus.OPEN:
            raise TwilioError(31000, f"cannot send digits while the call is {self._status}")
        return self._tasks.spawn(self._send_digit_groups(digits))

    def post_feedback(self, score: int | None = None,
                      issue: str | None = None) -> asyncio.Task | None:
        """Post call feedback (score 1-5, issue one of FEEDBACK_ISSUES; none = declined) as
        Twilio's SDK does: an Insights event to the event gateway (insights.py). Returns the
        posting task (its result: delivered or not); it never affects the call."""
        if score is not None and (isinstance(score, bool) or score not in (1, 2, 3, 4, 5)):
            raise InvalidArgumentError(f"feedback score must be 1-5 or None, got {score!r}")
        if issue is not None and issue not in FEEDBACK_ISSUES:
            raise InvalidArgumentError(
                f"feedback issue must be one of {', '.join(FEEDBACK_ISSUES)}, got {issue!r}"
            )
        self.feedback = {"score": score, "issue": issue}
        self.emit("feedback", score, issue)  # piphone: the call log keeps it
        if self._publish_feedback is None:
            return None
        return self._publish_feedback(self, score, issue)

    def set_condition(self, name: str, active: bool, data: dict[str, Any] | None = None) -> None:
        """Raise (``warning``) or clear (``warning-cleared``) a condition the appliance sees,
        e.g. ``audio-device-lost`` when the headset goes away (piphone extension)."""
        self.quality.set_condition(name, active, data)

    async def _quality_counters(self) -> Counters | None:
        return await self._media.counters() if self._media is not None else None

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # --- set-up ---------------------------------------------------------------------------
    async def _start_outgoing(self, params: str) -> None:
        """Offer (gathers ICE) and send the invite."""
        self._media = self._new_media()
        sdp = await self._media.offer()
        if self._status is CallStatus.CLOSED:
            return
        self._send("invite", {"callsid": self.outbound_connection_id, "sdp": sdp,
                              "twilio": {"params": params} if params else {}})

    def _prepare_incoming(self, gather: bool = True) -> asyncio.Task:
        """Check the offer; by default also apply it and gather ICE while the call rings."""
        self._media = self._new_media()
        if gather:
            self._prepared = self._tasks.spawn(self._unless_closed(
                self._media.prepare_answer(self._offer_sdp or "")))
            return self._prepared
        return self._tasks.spawn(self._unless_closed(
            self._media.check_offer(self._offer_sdp or "")))

    async def _unless_closed(self, step) -> None:
        """A media step that may fail only because the call closed under it (cancelled while
        it rang): then there is nothing to report."""
        try:
            await step
        except MediaError:
            if self._status is not CallStatus.CLOSED:
                raise

    async def _accept(self, rtc_configuration: dict[str, Any] | None) -> None:
        try:
            assert self._media is not None
            servers = _ice_servers_of(rtc_configuration)
            if servers is not None:  # other ICE servers: gather afresh with them
                await self._media.close()
                self._media_settings = replace(
                    self._media_settings, ice_servers=to_ice_servers(servers))
                self._media = self._new_media()
                self._prepared = None
            if self._prepared is None:
                await self._media.prepare_answer(self._offer_sdp or "")
            else:
                await self._prepared
            sdp = await self._media.answer()
            if self._status is not CallStatus.CONNECTING:
                return  # cancelled while we were answering
            self._send("answer", {"callsid": self.sid, "sdp": sdp})
            self._answered = True
            await self._media.wait_connected()
        except (MediaError, ValueError) as exc:
            self._fail(53405, f"media could not be set up: {exc}", exc)
            return
        self._maybe_open()

    async def _on_answer(self, frame: protocol.Frame) -> None:
        payload = frame.payload
        if isinstance(payload.get("reconnect"), str):
            self._reconnect_token = payload["reconnect"]
        if self._answered:
            return
        self._set_callsid(payload)
        self._answered = True
        assert self._media is not None
        try:
            await self._media.apply_answer(payload["sdp"])
            await self._media.wait_connected()
        except MediaError as exc:
            self._fail(53405, str(exc), exc)
            return
        self._maybe_open()

    def _maybe_open(self) -> None:
        if self._status in (CallStatus.CLOSED, CallStatus.OPEN):
            return
        if self._status is not CallStatus.RECONNECTING:  # else reconnect.py reopens it
            self._set_status(CallStatus.OPEN)
        if not self._was_connected:
            self._was_connected = True
            assert self._media is not None
            self._reconnection.media_up(self._media)  # from here on, lost media reconnects
            self.emit("accept", self)

    # --- frames from the server ------------------------------------------------------------
    def matches(self, callsid: str | None) -> bool:
        return callsid is not None and callsid in (self.call_sid, self.outbound_connection_id)

    def handle_frame(self, frame: protocol.Frame) -> None:
        """A frame the Device routed to this call."""
        kind = frame.type
        if kind == "ringing":
            self._set_callsid(frame.payload)
            if self._status in (CallStatus.CONNECTING, CallStatus.RINGING):
                self._set_status(CallStatus.RINGING)
                self.emit("ringing", bool(frame.payload.get("sdp")))
        elif kind == "answer":
            if self._reconnection.on_answer(frame.payload):
                return
            if self.direction is CallDirection.OUTGOING and self._status is not CallStatus.CLOSED:
                self._tasks.spawn(self._on_answer(frame))
        elif kind == "cancel":
            if self._status is CallStatus.PENDING:
                self._close()
                self.emit("cancel")
        elif kind == "hangup":
            self._on_hangup(frame.payload)
        elif kind == "dtmf":
            self.emit("dtmf", frame.payload["dtmf"])
        elif kind == "error":
            self.emit("error", _error_from(frame.payload))

    def _on_hangup(self, payload: dict[str, Any]) -> None:
        if self._status is CallStatus.CLOSED:
            return
        error = payload.get("error")
        if isinstance(error, dict):
            self.emit("error", _error_from(payload))
        if self._status is CallStatus.PENDING:  # the caller gave up
            self._close()
            self.emit("cancel")
            return
        self._close()
        self.emit("disconnect", self)

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
        if state == "failed" and self._status in (CallStatus.OPEN, CallStatus.RECONNECTING):
            self._reconnection.media_lost("ICE failed")

    # --- what reconnect.CallReconnection uses -------------------------------------------------
    def _status_closed(self) -> bool:
        return self._status is CallStatus.CLOSED

    def _resumable(self) -> bool:
        """Answered (by either side): the exchange keeps such a call for its grace."""
        return self._answered and self._status in (CallStatus.CONNECTING, CallStatus.OPEN,
                                                   CallStatus.RECONNECTING)

    def _set_reconnecting(self) -> None:
        self._set_status(CallStatus.RECONNECTING)

    def _set_open(self) -> None:
        self._set_status(CallStatus.OPEN)

    def _local_sdp(self) -> str:
        return self._media.local_sdp if self._media is not None else ""

    def _drop_media(self) -> None:
        """Close the lost media session (kept as ``_media`` until a new one connects)."""
        if self._media is not None:
            self._tasks.spawn(self._media.close())

    def _use_media(self, media: MediaPort) -> None:
        self._media = media

    def _lost_unanswered(self, error: TwilioError) -> None:
        """Signaling lost before the answer: the exchange dropped the call (no token yet)."""
        if self.direction is CallDirection.OUTGOING:
            self._fail(error.code, error.message)
            return
        self.emit("error", error)
        self._close()
        self.emit("cancel")

    async def _send_digit_groups(self, digits: str) -> None:
        async with self._digits_lock:
            for index, group in enumerate(digits.split("w")):
                if index:
                    await asyncio.sleep(DIGIT_PAUSE)
                if group and self._status is CallStatus.OPEN:
                    self._send("dtmf", {"callsid": self.sid, "dtmf": group})

    def _fail(self, code: int, message: str, original: object | None = None, *,
              hang_up: bool = True) -> None:
        if self._status is CallStatus.CLOSED:
            return
        log.warning("call %s failed: %s", self.sid, message)
        self.emit("error", TwilioError(code, message, original_error=original))
        if hang_up:
            self._send("hangup", {"callsid": self.sid, "message": message})
        was_up = self._answered or self.direction is CallDirection.OUTGOING
        self._close()
        if was_up:
            self.emit("disconnect", self)

    def _close(self) -> None:
        if self._status is CallStatus.CLOSED:
            return
        self._set_status(CallStatus.CLOSED)
        self._reconnection.stop()
        self._audio.end()
        if self._media is not None:
            self._tasks.spawn(self._close_media(self._media))
        else:
            self._closed.set()

    async def _close_media(self, media: MediaPort) -> None:
        try:
            await media.close()
        finally:
            self._tasks.cancel()
            self._closed.set()

    def _set_status(self, status: CallStatus) -> None:
        if status is self._status:
            return
        log.info("call %s: %s -> %s", self.sid, self._status.value, status.value)
        self._status = status
        self.emit("status", status)

    def __repr__(self) -> str:
        return f"<Call {self.sid} {self.direction.value} {self._status.value}>"


def _error_from(payload: dict[str, Any]) -> TwilioError:
    error = payload.get("error") or {}
    code = error.get("code") if isinstance(error.get("code"), int) else 31005
    message = error.get("message") if isinstance(error.get("message"), str) else None
    return TwilioError(code, message, original_error=error)


def _ice_servers_of(rtc_configuration: dict[str, Any] | None) -> list | None:
    if not rtc_configuration:
        return None
    servers = rtc_configuration.get("ice_servers", rtc_configuration.get("iceServers"))
    return None if servers is None else list(servers)
