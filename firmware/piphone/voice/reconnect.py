"""Call reconnection: the policy of Twilio's SDK for signaling and media loss, in one place.

- Signaling: the socket drops during a call that has a ``reconnect`` token -> the call goes
  ``reconnecting`` (53001); when the stream is back (``connected``) it sends the reconnect
  ``invite`` with the token, and the server's ``answer`` reopens it. A call without a token
  (still ringing) cannot be resumed: it ends at once with 53001.
- Media: ICE ``failed``, or no RTP packet for ``rtp_timeout`` seconds -> ``reconnecting``
  (53405); a new media session (aiortc has no ICE restart, so a new RTCPeerConnection) is
  offered with ``reinvite``, attempt after attempt with backoff, for up to ``give_up`` seconds;
  then the call fails with 53405 and disconnects. The loss is told by the RTP itself
  (``RtpWatchdog``): aioice only gives up on a vanished peer after ~30 s of consent failures,
  and aiortc has no ICE ``disconnected`` state, so the SDK's "disconnected with no bytes
  received" is, here, no packet for ``rtp_timeout``.
- ``reconnected`` fires once both signaling and media are open again, as in the SDK
  (lib/twilio/call.ts: _onTransportClose, _onMediaFailure, _onSignalingReconnected,
  _onMediaReconnected): each loss emits its own ``reconnecting``, recovery one ``reconnected``.

This module is the policy (timers, the watchdog, attempts, backoff); the call's state (what is
lost, whether it is open) is the call's table (call_states.py). A reconnection knows its call
only through ``CallHooks``: it fires events into that table (``media-lost``, ``media-back``,
``media-gave-up``, ``signaling-back``, ``signaling-gave-up``) and the call's steps call it back
(``start_media``, ``start_signaling``, ``watch``, ``stop``).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..backoff import Backoff
from .call_states import CallEvent
from .errors import TwilioError
from .ports import SendFrame
from .rtc import MediaError
from .rtc.ports import MediaPort
from .tasks import TaskSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconnectSettings:
    """Timers of call reconnection, in seconds (tests shorten them)."""

    rtp_timeout: float = 3.0  # no RTP packet this long: media is lost (> 0)
    check_interval: float = 0.1  # how often the watchdog looks at the packet count
    give_up: float = 30.0  # media attempts stop after this long: 53405 and disconnect
    # One attempt waits this long for its answer and ICE (then DTLS gets ``dtls_grace``).
    # Short, because aioice sends a check only 0, 0.5 and 1.5 s after it starts: fresh
    # attempts, each checking at once, are what bring media back within a second of the
    # network; an attempt costs a peer connection at each end (a few ms of CPU on a Pi).
    attempt_timeout: float = 0.7
    dtls_grace: float = 0.5
    # Pause between attempts: first, then times factor, at most cap, +-jitter share.
    backoff_first: float = 0.05
    backoff_factor: float = 1.5
    backoff_cap: float = 0.5
    backoff_jitter: float = 0.2
    signaling_give_up: float = 35.0  # a call whose signaling is not back by then ends (53001)
    signaling_retry_cap: float = 1.0  # longest pause between socket retries while a call waits

    def __post_init__(self) -> None:
        for name in ("rtp_timeout", "check_interval", "give_up", "attempt_timeout",
                     "signaling_give_up"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ReconnectSettings.{name} must be > 0 seconds")

    def media_backoff(self, rng: random.Random | None = None) -> Backoff:
        """The pauses between media attempts (piphone/backoff.py)."""
        return Backoff(first=self.backoff_first, cap=self.backoff_cap,
                       factor=self.backoff_factor, jitter=self.backoff_jitter, rng=rng)


class RtpWatchdog:
    """Calls ``on_lost`` once when the packet count stood still for ``timeout`` seconds.

    It looks every ``interval`` seconds (a timer on the loop, no task; the loop's clock): counting
    every packet through a callback would cost more than the look."""

    def __init__(self, count: Callable[[], int], timeout: float, on_lost: Callable[[], None],
                 interval: float = 0.1) -> None:
        self._count = count
        self.timeout = timeout
        self._on_lost = on_lost
        self.interval = interval
        self._timer: asyncio.TimerHandle | None = None
        self._last = -1
        self._since = 0.0

    def start(self) -> None:
        self.stop()
        loop = asyncio.get_running_loop()
        self._last, self._since = self._count(), loop.time()
        self._timer = loop.call_later(self.interval, self._look)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def running(self) -> bool:
        return self._timer is not None

    def _look(self) -> None:
        loop = asyncio.get_running_loop()
        now, count = loop.time(), self._count()
        if count != self._last:
            self._last, self._since = count, now
        elif now - self._since >= self.timeout:
            self._timer = None
            log.warning("no RTP for %.1f s: media lost", now - self._since)
            self._on_lost()
            return
        self._timer = loop.call_later(self.interval, self._look)


class Fire(Protocol):
    """The call's state table (Call._fire): an event, True if a row took it."""

    def __call__(self, event: CallEvent, *, error: TwilioError | None = None,
                 media: MediaPort | None = None, sdp: str | None = None,
                 token: str | None = None) -> bool: ...


@dataclass(frozen=True)
class CallHooks:
    """What a reconnection needs of its call, as callbacks (call.py makes them)."""

    fire: Fire
    send: SendFrame  # the Device's signaling stream
    new_media: Callable[[], MediaPort]  # a session carrying the call's audio
    sid: Callable[[], str | None]  # the id frames name the call by
    local_sdp: Callable[[], str]  # of the call's current session: what a resume offers
    token: Callable[[], str | None]  # the newest reconnect token


class CallReconnection:
    """The reconnection policy of one call: the RTP watchdog, media attempts, the wait for
    the signaling to resume, and the give-ups."""

    def __init__(self, settings: ReconnectSettings, hooks: CallHooks) -> None:
        self.settings = settings
        self._hooks = hooks
        self._watchdog: RtpWatchdog | None = None
        self._signaling_back = asyncio.Event()  # attempts wait for an open stream
        self._signaling_back.set()
        self._signaling_timer: asyncio.TimerHandle | None = None  # set: waiting to resume
        self._resume_sent = False  # the resume invite went out on the current socket
        self._reinvite_answer: asyncio.Future[str] | None = None
        self._tasks = TaskSet(self)
        self._rng = random.Random()
        self._stopped = False
        self.media_attempts = 0  # attempts of the current media reconnection (for tests)

    @property
    def resuming(self) -> bool:
        """Waiting for the signaling to come back and the call to resume."""
        return self._signaling_timer is not None

    # --- media ----------------------------------------------------------------------------
    def watch(self, media: MediaPort) -> None:
        """The call's media is connected: watch its RTP."""
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._stopped:
            return
        self._watchdog = RtpWatchdog(lambda: media.packets_received,
                                     self.settings.rtp_timeout, self._rtp_lost,
                                     self.settings.check_interval)
        self._watchdog.start()

    def _rtp_lost(self) -> None:
        reason = f"no media received for {self.settings.rtp_timeout:.1f} s"
        self._hooks.fire(CallEvent.MEDIA_LOST,
                         error=TwilioError(53405, f"Media connection failed: {reason}"))

    def start_media(self) -> None:
        """The call lost its media (and closed the lost session): offer new ones."""
        if self._watchdog is not None:
            self._watchdog.stop()
        if not self._stopped:
            self._tasks.spawn(self._reconnect_media())

    async def _reconnect_media(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.give_up
        backoff = settings.media_backoff(self._rng)
        self.media_attempts = 0
        while loop.time() < deadline:
            attempt = await self._attempt(min(settings.attempt_timeout, deadline - loop.time()))
            if attempt is not None:
                media, sdp = attempt
                log.info("call %s: media back after %d attempt(s)", self._hooks.sid(),
                         self.media_attempts)
                if not self._hooks.fire(CallEvent.MEDIA_BACK, media=media, sdp=sdp):
                    await media.close()  # the call ended meanwhile
                return
            await asyncio.sleep(max(0.0, min(backoff.next(), deadline - loop.time())))
        self._hooks.fire(CallEvent.MEDIA_GAVE_UP, error=TwilioError(
            53405, f"media connection not restored within {settings.give_up:.0f} s"))

    async def _attempt(self, timeout: float) -> tuple[MediaPort, str] | None:
        """One reinvite with a new session: the session (and its offer) once connected."""
        loop = asyncio.get_running_loop()
        await self._signaling_back.wait()  # a reinvite only means something on an open stream
        self.media_attempts += 1
        media = self._hooks.new_media()
        started = loop.time()
        connected = False
        try:
            sdp = await media.offer()
            self._reinvite_answer = loop.create_future()
            if not self._hooks.send("reinvite", {"callsid": self._hooks.sid(), "sdp": sdp},
                                    retry=False):
                raise MediaError("signaling is down")
            async with asyncio.timeout(timeout):  # not wait_for: it may swallow a cancel
                answer = await self._reinvite_answer
            await media.apply_answer(answer)
            try:
                await media.wait_connected(max(0.05, timeout - (loop.time() - started)))
            except MediaError:
                if not media.ice_completed:
                    raise
                await media.wait_connected(self.settings.dtls_grace)  # ICE is through
            connected = True
            return media, sdp
        except (MediaError, TimeoutError) as exc:
            log.info("call %s: media attempt %d failed: %s", self._hooks.sid(),
                     self.media_attempts, exc)
            return None
        finally:
            self._reinvite_answer = None
            if not connected:  # failed, or cancelled because the call closed
                await media.close()

    # --- signaling --------------------------------------------------------------------------
    def start_signaling(self) -> None:
        """The call lost its signaling and waits to resume: until the stream is back (no
        reinvite meanwhile), for at most ``signaling_give_up`` seconds."""
        self._signaling_back.clear()
        self._resume_sent = False
        if self._signaling_timer is None and not self._stopped:
            self._signaling_timer = asyncio.get_running_loop().call_later(
                self.settings.signaling_give_up, self._signaling_gave_up)

    def signaling_connected(self) -> None:
        """The stream is back (``connected``): resume the call with its reconnect token."""
        if self.resuming:
            hooks = self._hooks
            self._resume_sent = hooks.send("invite", {
                "callsid": hooks.sid(), "sdp": hooks.local_sdp(), "reconnect": hooks.token(),
                "preflight": False, "twilio": {}}, retry=False)

    def on_answer(self, payload: dict[str, Any]) -> bool:
        """An ``answer`` frame: True when it belongs to a reconnection (consumed here)."""
        if self.resuming and self._resume_sent:
            self._cancel_signaling_timer()
            self._signaling_back.set()
            log.info("call %s: signaling resumed", self._hooks.sid())
            token = payload.get("reconnect")
            self._hooks.fire(CallEvent.SIGNALING_BACK,
                             token=token if isinstance(token, str) else None)
            return True
        if self._reinvite_answer is not None and not self._reinvite_answer.done():
            self._reinvite_answer.set_result(payload["sdp"])
            return True
        return False

    def _signaling_gave_up(self) -> None:
        self._signaling_timer = None
        self._hooks.fire(CallEvent.SIGNALING_GAVE_UP, error=TwilioError(
            53001, "the signaling connection did not come back within "
            f"{self.settings.signaling_give_up:.0f} s"))

    def _cancel_signaling_timer(self) -> None:
        if self._signaling_timer is not None:
            self._signaling_timer.cancel()
            self._signaling_timer = None

    def stop(self) -> None:
        """The call closed: no more watching or attempts (idempotent)."""
        self._stopped = True
        if self._watchdog is not None:
            self._watchdog.stop()
        self._cancel_signaling_timer()
        self._signaling_back.set()
        if self._reinvite_answer is not None and not self._reinvite_answer.done():
            self._reinvite_answer.cancel()
        self._tasks.cancel()
