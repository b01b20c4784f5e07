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
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import TwilioError
from .rtc import MediaError
from .rtc.ports import MediaPort
from .tasks import TaskSet

if TYPE_CHECKING:
    from .call import Call

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

    def backoff(self, attempt: int, rng: random.Random) -> float:
        base = min(self.backoff_cap, self.backoff_first * self.backoff_factor ** attempt)
        return base * (1 + self.backoff_jitter * (2 * rng.random() - 1))


class RtpWatchdog:
    """Calls ``on_lost`` once when the packet count stood still for ``timeout`` seconds.

    It looks every ``interval`` seconds (a timer on the loop, no task): counting every packet
    through a callback would cost more than the look."""

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
        self._last, self._since = self._count(), time.monotonic()
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._look)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def running(self) -> bool:
        return self._timer is not None

    def _look(self) -> None:
        now, count = time.monotonic(), self._count()
        if count != self._last:
            self._last, self._since = count, now
        elif now - self._since >= self.timeout:
            self._timer = None
            log.warning("no RTP for %.1f s: media lost", now - self._since)
            self._on_lost()
            return
        self._timer = asyncio.get_running_loop().call_later(self.interval, self._look)


class CallReconnection:
    """The reconnection state of one Call: signaling and media status, the watchdog and the
    media attempts. The Call calls in on its events; this changes its status and emits."""

    OPEN, RECONNECTING = "open", "reconnecting"

    def __init__(self, call: Call, settings: ReconnectSettings) -> None:
        self.call = call
        self.settings = settings
        self.signaling = self.OPEN
        self.media = self.OPEN
        self._watchdog: RtpWatchdog | None = None
        self._signaling_back = asyncio.Event()
        self._signaling_back.set()
        self._reconnect_invite_sent = False
        self._reinvite_answer: asyncio.Future[str] | None = None
        self._signaling_timer: asyncio.TimerHandle | None = None
        self._tasks = TaskSet(self)
        self._rng = random.Random()
        self.media_attempts = 0  # attempts of the current media reconnection (for tests)

    @property
    def active(self) -> bool:
        return self.RECONNECTING in (self.signaling, self.media)

    # --- media ----------------------------------------------------------------------------
    def media_up(self, media: MediaPort) -> None:
        """The call's media is connected: watch its RTP."""
        if self._watchdog is not None:
            self._watchdog.stop()
        self._watchdog = RtpWatchdog(lambda: media.packets_received,
                                     self.settings.rtp_timeout, self._rtp_lost,
                                     self.settings.check_interval)
        self._watchdog.start()

    def _rtp_lost(self) -> None:
        self.media_lost(f"no media received for {self.settings.rtp_timeout:.1f} s")

    def media_lost(self, reason: str) -> None:
        call = self.call
        if call._status_closed() or self.media == self.RECONNECTING:
            return
        log.warning("call %s: media lost (%s); reconnecting", call.sid, reason)
        if self._watchdog is not None:
            self._watchdog.stop()
        self.media = self.RECONNECTING
        self._enter_reconnecting(TwilioError(53405, f"Media connection failed: {reason}"))
        call._drop_media()  # the exchange closes its side on the reinvite anyway
        self._tasks.spawn(self._reconnect_media())

    async def _reconnect_media(self) -> None:
        call, settings = self.call, self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.give_up
        self.media_attempts = 0
        while loop.time() < deadline and not call._status_closed():
            media = await self._attempt(min(settings.attempt_timeout, deadline - loop.time()))
            if media is not None:
                self._media_reconnected(media)
                return
            pause = settings.backoff(self.media_attempts - 1, self._rng)
            await asyncio.sleep(max(0.0, min(pause, deadline - loop.time())))
        if not call._status_closed():
            call._fail(53405, f"media connection not restored within {settings.give_up:.0f} s")

    async def _attempt(self, timeout: float) -> MediaPort | None:
        """One reinvite with a new peer connection; the session once connected, else None."""
        call = self.call
        loop = asyncio.get_running_loop()
        await self._signaling_back.wait()  # a reinvite only means something on an open stream
        self.media_attempts += 1
        media = call._new_media()
        started = loop.time()
        connected = False
        try:
            sdp = await media.offer()
            self._reinvite_answer = loop.create_future()
            if not call._send("reinvite", {"callsid": call.sid, "sdp": sdp}, retry=False):
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
            return media
        except (MediaError, TimeoutError) as exc:
            log.info("call %s: media attempt %d failed: %s", call.sid, self.media_attempts, exc)
            return None
        finally:
            self._reinvite_answer = None
            if not connected:  # failed, or cancelled because the call closed
                await media.close()

    def _media_reconnected(self, media: MediaPort) -> None:
        call = self.call
        if call._status_closed():
            self._tasks.spawn(media.close())
            return
        call._use_media(media)
        self.media = self.OPEN
        log.info("call %s: media back after %d attempt(s)", call.sid, self.media_attempts)
        self.media_up(media)
        self._maybe_reconnected()

    # --- signaling --------------------------------------------------------------------------
    def signaling_lost(self) -> None:
        call = self.call
        if call._status_closed():
            return
        if call._reconnect_token is None or not call._resumable():
            call._lost_unanswered(TwilioError(
                53001, "the signaling connection was lost before the call was answered"))
            return
        self.signaling = self.RECONNECTING
        self._signaling_back.clear()
        self._reconnect_invite_sent = False
        self._enter_reconnecting(TwilioError(53001))
        if self._signaling_timer is None:
            self._signaling_timer = asyncio.get_running_loop().call_later(
                self.settings.signaling_give_up, self._signaling_gave_up)

    def signaling_connected(self) -> None:
        """The stream is back (``connected``): resume the call with its reconnect token."""
        call = self.call
        if self.signaling != self.RECONNECTING or call._status_closed():
            return
        self._reconnect_invite_sent = call._send("invite", {
            "callsid": call.sid, "sdp": call._local_sdp(), "reconnect": call._reconnect_token,
            "preflight": False, "twilio": {}}, retry=False)

    def on_answer(self, payload: dict[str, Any]) -> bool:
        """An ``answer`` frame: True when it belongs to a reconnection (consumed here)."""
        if self.signaling == self.RECONNECTING and self._reconnect_invite_sent:
            if isinstance(payload.get("reconnect"), str):
                self.call._reconnect_token = payload["reconnect"]
            self.signaling = self.OPEN
            self._cancel_signaling_timer()
            self._signaling_back.set()
            log.info("call %s: signaling resumed", self.call.sid)
            self._maybe_reconnected()
            return True
        if self._reinvite_answer is not None and not self._reinvite_answer.done():
            self._reinvite_answer.set_result(payload["sdp"])
            return True
        return False

    def token_refused(self, error: TwilioError) -> None:
        """The server refused our token on the new stream: this call cannot resume."""
        if self.signaling == self.RECONNECTING:
            # No hangup: the stream is not authenticated; the exchange's grace ends its side.
            self.call._fail(error.code, f"cannot resume the call: {error.message}", error,
                            hang_up=False)

    def _signaling_gave_up(self) -> None:
        self._signaling_timer = None
        if self.signaling == self.RECONNECTING:
            self.call._fail(53001, "the signaling connection did not come back within "
                            f"{self.settings.signaling_give_up:.0f} s")

    # --- both ---------------------------------------------------------------------------------
    def _enter_reconnecting(self, error: TwilioError) -> None:
        self.call._set_reconnecting()
        self.call.emit("reconnecting", error)

    def _maybe_reconnected(self) -> None:
        if not self.active and not self.call._status_closed():
            self.call._set_open()
            self.call.emit("reconnected")

    def _cancel_signaling_timer(self) -> None:
        if self._signaling_timer is not None:
            self._signaling_timer.cancel()
            self._signaling_timer = None

    def stop(self) -> None:
        """The call closed: no more watching or attempts (idempotent)."""
        if self._watchdog is not None:
            self._watchdog.stop()
        self._cancel_signaling_timer()
        self._signaling_back.set()
        if self._reinvite_answer is not None and not self._reinvite_answer.done():
            self._reinvite_answer.cancel()
        self._tasks.cancel()
