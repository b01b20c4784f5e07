"""Device: the Twilio.Device API in Python: register, incoming calls, connect(), tokens.

Events (pyee, the SDK's names): ``registering``, ``registered``, ``unregistered``,
``incoming(call)``, ``error(TwilioError, call | None)``, ``tokenWillExpire(device)``,
``destroyed``; piphone's ``voicemail(payload)``: the mailbox at the local exchange changed.

With no ``signaling_url`` it is the SDK's default: Twilio's edge (``edge``, a name or a list
tried in order) over wss:// verified against the system's trust store (voice/tls.py).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..errors import InvalidStateError
from . import call_media, protocol, tokens
from . import connect_token as connect_tokens
from .call import Call, CallDirection
from .call_states import CallStatus
from .device_options import DeviceOptions, active_call, check_update
from .edges import EDGES, connected_edge, edge_list, twilio_signaling_url  # noqa: F401
from .errors import TOKEN_REFUSALS, TwilioError, server_error
from .events import Emitter
from .identity import is_party
from .insights import InsightsPublisher, feedback_event, twilio_event_gateway
from .preflight import PreflightOptions, PreflightTest
from .rtc import IceServerLike, MediaError, MediaSettings
from .signaling import Signaling
from .tasks import TaskSet, first_set
from .token_refresh import TokenRefresher

log = logging.getLogger(__name__)

PARTIES = ("From", "To", "Caller", "Called")  # invite parameters that name a party


class DeviceState(enum.StrEnum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    DESTROYED = "destroyed"


class Device(Emitter):
    def __init__(self, token: str, **options: Any) -> None:
        """``options``: DeviceOptions' fields (voice/device_options.py), as the SDK's
        ``Device.Options``; ``update_options`` changes them later."""
        super().__init__()
        self._options = DeviceOptions().changed(options)
        self._token = token
        tokens.read(token)  # a token that is not even a JWT is refused here (20101)
        # Feedback goes to the event_gateway option's URL, else the one the server names
        # (the local exchange), else Twilio's for our home region (insights.py).
        self._announced_gateway: str | None = None
        self._home: str | None = None
        self._edge: str | None = None
        self._state = DeviceState.UNREGISTERED
        self._calls: list[Call] = []
        self.identity: str | None = None
        self.region: str | None = None
        self._stream = Signaling(self._options.signaling_urls(), lambda: self._token,
                                 ssl_context=self._options.ssl_context,
                                 heartbeat_timeout=self._options.heartbeat_timeout)
        # Feedback over https trusts what signaling trusts (the same context).
        self._publisher = InsightsPublisher(lambda: self.event_gateway, lambda: self._token,
                                            ssl_context=lambda: self._stream.ssl_context,
                                            metadata=lambda: self._options.metadata)
        self._backoff_cap = self._stream.backoff.cap
        self._token_refresher = TokenRefresher(
            token=lambda: self._token, update=self.update_token, ask=self._ask_for_token,
            report=self._report_token_error, source=self._options.token_source,
            margin=self._options.token_refresh_ms / 1000)
        self._stream.before_connect = self._token_refresher.before_connect
        self._stream.on("frame", self._on_frame)
        self._stream.on("close", self._on_stream_close)
        self._stream.on("error", self._on_stream_error)
        self._connected = asyncio.Event()  # 'connected' received on the current socket
        self._refused = asyncio.Event()  # the server refused our token
        self._refusal: TwilioError | None = None
        self._should_reregister = False
        self._register_timer: asyncio.TimerHandle | None = None
        self._state_changed = asyncio.Event()  # set, and replaced, at every state change
        self._tasks = TaskSet(self)
        self._last_error: TwilioError | None = None
        self._placing = False  # a connect() is under way

    @staticmethod
    def run_preflight(token: str, options: PreflightOptions | Mapping[str, Any] | None = None
                      ) -> PreflightTest:
        """The SDK's ``Device.runPreflight``: a test call on a Device of its own (preflight.py)."""
        return PreflightTest(token, options, device_factory=Device)

    # --- properties ------------------------------------------------------------------------
    @property
    def state(self) -> DeviceState:
        return self._state

    @property
    def calls(self) -> list[Call]:
        return list(self._calls)

    @property
    def token(self) -> str:
        return self._token

    @property
    def signaling_url(self) -> str:
        """The signaling URL in use (or tried next: with several edges, it falls back)."""
        return self._stream.url

    @property
    def edge(self) -> str | None:
        """The edge the device is connected to, as the server names it (the SDK's
        ``Device.edge``: for ``roaming`` the edge it landed on); None before connecting."""
        return self._edge

    @property
    def home(self) -> str | None:
        """The home region the server names in ``connected`` (the SDK's ``Device.home``)."""
        return self._home

    @property
    def media_settings(self) -> MediaSettings:
        """What the next call's media sessions are made with (from the options)."""
        return self._options.media_settings()

    def set_ice_servers(self, servers: Sequence[IceServerLike]) -> None:
        """STUN/TURN servers of the calls from now on (e.g. fresh Network Traversal Service
        credentials); calls already up keep theirs."""
        self._options = replace(self._options, ice_servers=tuple(servers))

    @property
    def event_gateway(self) -> str | None:
        if self._options.event_gateway or self._announced_gateway:
            return self._options.event_gateway or self._announced_gateway
        return twilio_event_gateway(self._home) if not self._options.signaling_url else None

    def _post_feedback(self, call: Call, score: int | None,
                       issue: str | None) -> asyncio.Task[bool]:
        event = feedback_event(call, score, issue, region=self.region, dscp=self._options.dscp)
        return self._tasks.spawn(self._publisher.post(event))

    @property
    def last_failure(self) -> TwilioError | None:
        """Why the signaling stream's last connection attempt failed (53000, its cause in
        ``original_error``); None once a connection is open. For an application that says why
        it is not registered: a network or server away is no ``error`` event."""
        return self._stream.last_failure

    @property
    def is_busy(self) -> bool:
        """On an active call (placed, or accepted), as the SDK's: a ringing one is not."""
        return active_call(self._calls) is not None

    @property
    def options(self) -> DeviceOptions:
        return self._options

    def update_options(self, **options: Any) -> None:
        """The SDK's ``updateOptions``: change options (device_options.py says which may
        change during a call: all but the signaling URLs); the next call uses them."""
        self._assert_alive()
        new = self._options.changed(options)
        moved = check_update(self._options, new, self.is_busy)
        self._options = new
        self._token_refresher.source = new.token_source
        self._token_refresher.margin = new.token_refresh_ms / 1000
        self._stream.heartbeat_timeout = new.heartbeat_timeout
        if moved:  # reconnects there; registers again if it was registered
            self._stream.move(new.signaling_urls(), new.ssl_context)

    def disconnect_all(self) -> None:
        """The SDK's ``disconnectAll``: ``disconnect()`` every call."""
        for call in list(self._calls):
            call.disconnect()

    # --- registration ------------------------------------------------------------------------
    async def register(self, timeout: float = 10.0) -> None:
        """Register for incoming calls; returns when registered, raises TwilioError if refused."""
        self._assert_alive()
        if self._state is not DeviceState.UNREGISTERED:
            raise InvalidStateError(
                f'register() needs state "unregistered", the device is "{self._state}"'
            )
        self._should_reregister = False
        self._set_state(DeviceState.REGISTERING)
        self._last_error = None
        try:
            await self._ensure_stream(timeout)
        except TwilioError:
            self._set_state(DeviceState.UNREGISTERED)  # else register() could never be retried
            raise
        self._send_presence(True)
        await self._wait_state({DeviceState.REGISTERED, DeviceState.UNREGISTERED,
                                DeviceState.DESTROYED}, timeout)
        if self.state is not DeviceState.REGISTERED:  # (the property: set while we waited)
            raise self._last_error or TwilioError(31005, "registration was refused")

    async def unregister(self, timeout: float = 10.0) -> None:
        self._assert_alive()
        if self._state is not DeviceState.REGISTERED:
            raise InvalidStateError(
                f'unregister() needs state "registered", the device is "{self._state}"'
            )
        self._should_reregister = False
        self._send_presence(False)
        await self._wait_state({DeviceState.UNREGISTERED, DeviceState.DESTROYED}, timeout)

    def _send_presence(self, presence: bool) -> None:
        self._stream.send("register", {"media": {"audio": presence}})
        self._cancel_timer("_register_timer")
        if presence:
            loop = asyncio.get_running_loop()
            self._register_timer = loop.call_later(self._options.register_interval,
                                                   self._send_presence, True)

    # --- calls ---------------------------------------------------------------------------------
    async def connect(self, params: Mapping[str, Any] | None = None, *,
                      rtc_configuration: dict[str, Any] | None = None,
                      connect_token: str | None = None, timeout: float = 10.0) -> Call:
        """Place a call (``params['To']`` names the callee), or with ``connect_token`` take
        over the call it names (voice/connect_token.py); returns it once the invite is out.
        As the SDK's, refused (InvalidStateError) while a call is active (not held) or placed: the
        protocol cannot tell two outgoing calls apart until they ring. ``rtc_configuration``
        may name this call's ``ice_servers``/``iceServers``, as ``Call.accept``'s."""
        self._assert_alive()
        resumed = connect_tokens.decode(connect_token) if connect_token is not None else None
        if self._placing or active_call(self._calls, held=False) is not None:
            raise InvalidStateError("A Call is already active")
        params = {str(k): "" if v is None else str(v) for k, v in (params or {}).items()}
        self._placing = True
        try:
            settings = self._options.media_settings()
            return await self._place(params, timeout, call_media.with_rtc_configuration(
                settings, rtc_configuration) or settings, resumed)
        finally:
            self._placing = False

    async def _place(self, params: dict[str, str], timeout: float,
                     media_settings: MediaSettings,
                     resumed: connect_tokens.ConnectToken | None) -> Call:
        await self._ensure_stream(timeout)
        kept = {} if resumed is None else {  # a call taken over: its parties and token
            "parameters": resumed.parameters, "reconnect_token": resumed.signaling_reconnect_token}
        call = self._new_call(CallDirection.OUTGOING, media_settings=media_settings,
                              custom_parameters=resumed.custom_parameters if resumed else params,
                              **kept)
        await call.start_outgoing(protocol.encode_params(params))
        return call

    def _new_call(self, direction: CallDirection, media_settings: MediaSettings | None = None,
                  **details: Any) -> Call:
        """A call of this device's (kept in ``calls`` until it closes)."""
        call = Call(direction=direction, send=self._stream.send,
                    media_settings=media_settings or self._options.media_settings(),
                    source=self._options.audio_source(), sink=self._options.audio_sink(),
                    quality=self._options.quality, reconnect_settings=self._options.reconnect,
                    publish_feedback=self._post_feedback,
                    echo_stats=self._options.echo_stats, **details)
        self._calls.append(call)

        def forget(*_: Any) -> None:
            if call in self._calls:
                self._calls.remove(call)

        for event in ("disconnect", "cancel", "reject"):
            call.on(event, forget)
        call.on("status", lambda s: forget() if s is CallStatus.CLOSED else None)
        return call

    async def _on_invite(self, payload: dict[str, Any]) -> None:
        if self.is_busy and not self._options.allow_incoming_while_busy:
            log.info("busy: ignoring incoming invite %s", payload["callsid"])
            return
        parameters = payload.get("parameters") or {}
        parameters = {str(k): str(v) for k, v in parameters.items() if v is not None}
        parameters.setdefault("CallSid", payload["callsid"])
        # The parties are shown (status, LEDs' peer) and logged: refuse any that could carry
        # a control character or a line break into a log or sd_notify (voice/identity.py).
        bad = [k for k in PARTIES if k in parameters and not is_party(parameters[k])]
        if bad:
            log.warning("invite %r refused: its %s is not a client identity, number or SIP "
                        "address", payload["callsid"][:64], "/".join(bad))
            self._stream.send("reject", {"callsid": payload["callsid"]})
            self.emit("error", TwilioError(31100, f"malformed invite: bad {'/'.join(bad)}"), None)
            return
        call = self._new_call(
            CallDirection.INCOMING, parameters=parameters,
            custom_parameters=protocol.decode_params(parameters.get("Params")),
            offer_sdp=payload["sdp"], reconnect_token=payload.get("reconnect"))
        try:
            await call.prepare_incoming(gather=self._options.gather_while_ringing)
        except MediaError as exc:
            log.warning("invite %s has an unusable offer: %s", call.sid, exc)
            call.reject()
            self.emit("error", TwilioError(31100, f"malformed invite: {exc}"), None)
            return
        if call.status() is CallStatus.PENDING:  # not cancelled while we prepared
            self.emit("incoming", call)

    # --- tokens ----------------------------------------------------------------------------------
    def update_token(self, token: str) -> None:
        """Use a new token (the one place it is kept: the stream, feedback and the refresher
        read it from here)."""
        tokens.read(token)
        self._token = token
        self._refusal = None  # the old token's refusal says nothing of the new one
        self._refused.clear()
        self._stream.token_changed()
        self._token_refresher.token_changed()

    def _report_token_error(self, error: TwilioError) -> None:
        self.emit("error", error, None)

    def _ask_for_token(self) -> bool:
        """``tokenWillExpire``; False if nobody listens (token_refresh.py)."""
        self.emit("tokenWillExpire", self)
        return bool(self.listeners("tokenWillExpire"))

    # --- stream events ---------------------------------------------------------------------------
    async def _ensure_stream(self, timeout: float) -> None:
        self._stream.start()
        # A refused token never gets 'connected': report the server's refusal (20101, 20104)
        # at once instead of a 53000 when the timeout runs out.
        await first_set((self._connected, self._refused), timeout)
        if self._connected.is_set():
            return
        if self._refusal is not None:
            raise self._refusal
        failure = self._stream.last_failure
        reason = f": {failure.message}" if failure is not None else ""
        raise TwilioError(53000, f"no signaling connection to {self.signaling_url} "
                          f"within {timeout:.0f} s{reason}",
                          original_error=failure.original_error if failure else None)

    def _on_frame(self, frame: protocol.Frame) -> None:
        try:
            self._dispatch(frame)
        except Exception:  # a handler bug must not kill the stream
            log.exception("error handling a %s frame", frame.type)

    def _dispatch(self, frame: protocol.Frame) -> None:
        payload = frame.payload
        kind = frame.type
        if kind == "connected":
            token = payload.get("token") or {}
            self.identity = token.get("identity", self.identity)
            self.region = payload.get("region", self.region)
            self._home = payload.get("home", self._home)
            self._edge = connected_edge(payload)
            if isinstance(payload.get("eventgw"), str):
                self._announced_gateway = payload["eventgw"]
            self._token_refresher.connected(token.get("ttl"))
            self._refusal = None
            self._refused.clear()
            self._connected.set()
            if self._should_reregister:
                self._should_reregister = False
                self._set_state(DeviceState.REGISTERING)
                self._send_presence(True)
            self._stream.backoff.cap = self._backoff_cap
            for call in list(self._calls):  # resume calls cut off with the socket
                call.signaling_connected()
        elif kind == "ready":
            self._set_state(DeviceState.REGISTERED)
        elif kind == "offline":
            self._cancel_timer("_register_timer")
            self._set_state(DeviceState.UNREGISTERED)
        elif kind == "invite":
            self._tasks.spawn(self._on_invite(payload))
        elif kind == "error" and not payload.get("voiceeventsid"):  # a message's: the call's
            self._on_error(payload)
        elif kind == "close":
            self._connected.clear()
        elif kind == "voicemail":  # piphone's extension (protocol.py): messages, unheard, url
            self.emit("voicemail", payload)
        else:
            found = self._find_call(payload.get("callsid"), kind)
            if found is None:
                log.debug("%s for unknown call %s ignored", kind, payload.get("callsid"))
            else:
                found.handle_frame(frame)

    def _find_call(self, callsid: str | None, kind: str) -> Call | None:
        for call in self._calls:
            if call.matches(callsid):
                return call
        # The server names the real CallSid in the first ringing/answer of an outgoing call.
        if kind in ("ringing", "answer"):
            waiting = [c for c in self._calls if c.direction is CallDirection.OUTGOING
                       and c.call_sid is None and c.status() is not CallStatus.CLOSED]
            if len(waiting) == 1:
                return waiting[0]
            if waiting:  # the protocol cannot tell them apart (nor can Twilio's SDK)
                log.warning("%s for %s matches %d outgoing calls; dropped", kind, callsid,
                            len(waiting))
        return None

    def _on_error(self, payload: dict[str, Any]) -> None:
        wire_code, twilio_error = server_error(payload["error"])  # a refused token: 20xxx
        code = twilio_error.code
        call = self._find_call(payload.get("callsid"), "error")
        if code == 20104:  # expired: stop re-registering until a new token comes
            self._cancel_timer("_register_timer")
        refused = wire_code in TOKEN_REFUSALS
        if refused and self._state is DeviceState.REGISTERING:
            self._set_state(DeviceState.UNREGISTERED)
        log.error("signaling error %s: %s", code, twilio_error.message)
        self._last_error = twilio_error
        if refused and not self._connected.is_set():
            self._refusal = twilio_error
            self._refused.set()
        self.emit("error", twilio_error, call)
        if call is not None:
            call.handle_frame(protocol.Frame("error", payload))
        if refused:  # calls waiting to resume cannot: a clear end, not a wait for the grace
            for waiting in list(self._calls):
                waiting.token_refused(twilio_error)

    def _on_stream_close(self) -> None:
        self._connected.clear()
        for call in list(self._calls):
            call.signaling_lost()
        if any(call.status() is CallStatus.RECONNECTING for call in self._calls):
            # A call waits for this stream: retry often (the exchange's grace is short).
            assert self._options.reconnect is not None
            self._stream.backoff.cap = self._options.reconnect.signaling_retry_cap
        self._cancel_timer("_register_timer")
        if self._state in (DeviceState.REGISTERED, DeviceState.REGISTERING):
            self._should_reregister = True
            self._set_state(DeviceState.UNREGISTERED)

    def _on_stream_error(self, error: object) -> None:
        if not isinstance(error, TwilioError):  # a handler of the stream's events raised
            log.error("error handling a signaling event",
                      exc_info=error if isinstance(error, BaseException) else None)
            return
        # The connection failed or broke: logged once there; an application that does not
        # listen gets no "unhandled error" line at every retry.
        if error.code in (53000, 31005) and self.listeners("error"):
            self.emit("error", error, None)
        else:
            log.debug("signaling: %s", error)

    # --- life cycle ------------------------------------------------------------------------------
    async def destroy(self) -> None:
        """Hang up every call, close the stream; the device cannot be used again."""
        if self._state is DeviceState.DESTROYED:
            return
        calls = list(self._calls)  # a closed call leaves self._calls at once: keep them here
        for call in calls:
            if call.status() is CallStatus.PENDING:
                call.ignore()
            else:
                call.disconnect()
        if closing := [c.wait_closed() for c in calls]:
            await asyncio.wait_for(asyncio.gather(*closing), 5)
        self._cancel_timer("_register_timer")
        self._token_refresher.cancel()
        self._tasks.cancel()
        await self._stream.close()
        self._set_state(DeviceState.DESTROYED)  # emits "destroyed" (once: no second emit here)

    async def __aenter__(self) -> Device:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.destroy()

    # --- helpers ---------------------------------------------------------------------------------
    def _set_state(self, state: DeviceState) -> None:
        if state is self._state:
            return
        log.info("device %s -> %s", self._state.value, state.value)
        self._state = state
        changed, self._state_changed = self._state_changed, asyncio.Event()
        changed.set()
        self.emit(state.value)

    async def _wait_state(self, states: set[DeviceState], timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while self._state not in states:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TwilioError(31005, f"no answer to register within {timeout:.0f} s")
            await first_set((self._state_changed,), left)

    def _cancel_timer(self, name: str) -> None:
        if (timer := getattr(self, name)) is not None:
            timer.cancel()
            setattr(self, name, None)

    def _assert_alive(self) -> None:
        if self._state is DeviceState.DESTROYED:
            raise InvalidStateError("the device was destroyed")
