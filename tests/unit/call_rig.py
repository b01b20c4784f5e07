"""Fake ports for a voice Call: the signaling send (with an exchange that answers reinvites
and resumes) and the call's audio, whose media sessions run on a network the test turns on and
off. No sockets, no aiortc peer connection: the tests run on the virtual clock
(tests/virtual_clock.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from piphone.pcm import Silence
from piphone.voice import protocol
from piphone.voice.call import Call, CallDirection
from piphone.voice.errors import TwilioError
from piphone.voice.quality import QualitySettings
from piphone.voice.reconnect import ReconnectSettings
from piphone.voice.rtc import MediaError, MediaSettings, NetworkReport
from piphone.voice.rtc.tracks import DrainSink

OFFER = "v=0 offer"
CALLSID = "CA1"


class FakeMedia:
    """One media session (rtc.ports.MediaPort): connects when the rig's network carries media;
    ICE is through at once, DTLS after ``rig.dtls_delay`` more seconds."""

    input_meter = None
    output_meter = None

    def __init__(self, rig: Rig, on_state: Any) -> None:
        self.rig = rig
        self.on_state = on_state
        self.codec: str | None = None
        self.closed = False
        self.ice_at: float | None = None
        self.answer_sdp: str | None = None
        self.settings: MediaSettings | None = None  # what the call made it with
        self._count = 0

    @property
    def ice_completed(self) -> bool:
        return self.ice_at is not None

    @property
    def packets_received(self) -> int:
        """50 packets a second while the network carries media (read from the loop's clock)."""
        if self.rig.media_up.is_set() and not self.closed and self.ice_at is not None:
            self._count = int(asyncio.get_running_loop().time() / 0.02)
        return self._count

    async def offer(self) -> str:
        if self.rig.offer_fails:
            raise MediaError("no ICE candidate to offer")
        return f"v=0 offer {len(self.rig.sessions)}"

    async def apply_answer(self, sdp: str) -> None:
        self.answer_sdp, self.codec = sdp, "opus"

    async def check_offer(self, offer_sdp: str) -> None:
        if offer_sdp != OFFER:
            raise MediaError("bad offer SDP")

    async def prepare_answer(self, offer_sdp: str) -> None:
        await self.check_offer(offer_sdp)
        if self.rig.prepare_fails:
            raise MediaError("cannot gather ICE candidates")

    async def answer(self) -> str:
        self.codec = "pcmu"
        return "v=0 answer"

    def network(self) -> NetworkReport:
        return NetworkReport()  # no network here

    async def wait_connected(self, timeout: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(10.0 if timeout is None else timeout):
                await self.rig.media_up.wait()
                if self.ice_at is None:
                    self.ice_at = loop.time()
                await asyncio.sleep(max(0.0, self.ice_at + self.rig.dtls_delay - loop.time()))
        except TimeoutError:
            raise MediaError("media not connected") from None

    async def close(self) -> None:
        self.closed = True

    def meter_levels(self, on_tick: Any = None, tick_every: float = 0.05) -> None:
        pass


class FakeAudio:
    """The call's audio (rtc.ports.CallAudioPort): its sessions are the rig's FakeMedia."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.muted = False
        self.held = False
        self.ended = False

    def session(self, settings: MediaSettings, *, on_state: Any = None) -> FakeMedia:
        session = FakeMedia(self.rig, on_state)
        session.settings = settings
        self.rig.sessions.append(session)
        return session

    def local_stream(self) -> Any:
        return None

    def remote_stream(self) -> Any:
        return None

    def end(self) -> None:
        self.ended = True


class Rig:
    """The world of one call: what it sent, a signaling stream and a media network."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], bool]] = []  # (type, payload, retry)
        self.sent_at: list[float] = []  # the loop's time of each
        self.queued: list[tuple[str, dict[str, Any]]] = []  # sent while the stream was down
        self.signaling_up = True
        self.media_up = asyncio.Event()  # the network carries media
        self.media_up.set()
        self.dtls_delay = 0.0
        self.answer_reinvites = True  # the exchange answers each reinvite at once
        self.resume_token: str | None = "tok2"  # the token a resume's answer carries
        self.offer_fails = self.prepare_fails = False
        self.sessions: list[FakeMedia] = []
        self.call: Call | None = None

    # the signaling port
    def send(self, type_: str, payload: dict[str, Any], *, retry: bool = True) -> bool:
        if not self.signaling_up:
            if retry:
                self.queued.append((type_, payload))
            return False
        loop = asyncio.get_running_loop()
        self.sent.append((type_, payload, retry))
        self.sent_at.append(loop.time())
        if type_ == "reinvite" and self.answer_reinvites:
            loop.call_soon(self.frame, "answer", {"callsid": payload["callsid"],
                                                  "sdp": "v=0 reinvite answer"})
        elif type_ == "invite" and "reconnect" in payload and self.resume_token is not None:
            loop.call_soon(self.frame, "answer", {"callsid": payload["callsid"], "sdp": "v=0",
                                                  "reconnect": self.resume_token})
        return True

    def frame(self, kind: str, payload: dict[str, Any]) -> None:
        assert self.call is not None
        self.call.handle_frame(protocol.Frame(kind, payload))

    def kinds(self) -> list[str]:
        return [type_ for type_, _, _ in self.sent]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [payload for type_, payload, _ in self.sent if type_ == kind]

    # the media port (ports.MediaFactory): the call's audio, which makes its sessions
    def audio(self, source: Any, sink: Any) -> FakeAudio:
        return FakeAudio(self)

    # what the Device tells a call
    def cut_signaling(self) -> None:
        self.signaling_up = False
        assert self.call is not None
        self.call.signaling_lost()

    def restore_signaling(self) -> None:
        self.signaling_up = True
        assert self.call is not None
        self.call.signaling_connected()


class Log:
    """A call's events in order: SDK events by name, ``status:<status>`` for status."""

    EVENTS = ("accept", "cancel", "disconnect", "error", "reject", "ringing", "reconnecting",
              "reconnected")

    def __init__(self, call: Call) -> None:
        self.entries: list[tuple[str, tuple[Any, ...]]] = []
        self.times: list[float] = []
        for name in self.EVENTS:
            call.on(name, lambda *args, _name=name: self._add(_name, args))
        call.on("status", lambda status: self._add(f"status:{status}", ()))

    def _add(self, name: str, args: tuple[Any, ...]) -> None:
        self.entries.append((name, args))
        self.times.append(asyncio.get_running_loop().time())

    def names(self) -> list[str]:
        return [name for name, _ in self.entries]

    def since(self, mark: int) -> list[str]:
        return self.names()[mark:]

    def codes(self, name: str) -> list[int]:
        return [args[0].code for n, args in self.entries if n == name
                and isinstance(args[0], TwilioError)]

    def when(self, name: str) -> float:
        return self.times[self.names().index(name)]

    def clear(self) -> None:
        self.entries.clear()
        self.times.clear()


def make_call(direction: CallDirection = CallDirection.INCOMING, *, token: str | None = "tok1",
              **settings: Any) -> tuple[Call, Rig, Log]:
    rig = Rig()
    incoming = direction is CallDirection.INCOMING
    call = Call(direction=direction, send=rig.send, media_settings=MediaSettings(),
                source=Silence(), sink=DrainSink(),
                parameters={"CallSid": CALLSID} if incoming else None,
                offer_sdp=OFFER if incoming else None,
                reconnect_token=token if incoming else None,
                quality=QualitySettings(enabled=False),
                reconnect_settings=ReconnectSettings(**settings),
                media_factory=rig.audio)
    rig.call = call
    return call, rig, Log(call)


async def settle(seconds: float = 0.01) -> None:
    """Let what is ready run (on the virtual clock: no real time)."""
    await asyncio.sleep(seconds)


async def open_incoming(**kwargs: Any) -> tuple[Call, Rig, Log]:
    call, rig, log = make_call(CallDirection.INCOMING, **kwargs)
    await call.prepare_incoming()
    task = call.accept()
    assert task is not None
    await task
    return call, rig, log


async def place(token: str | None = "tok1", *, ring: bool = True,
                answer: bool = True, **kwargs: Any) -> tuple[Call, Rig, Log]:
    """An outgoing call: placed, ringing (``ring``) and answered (``answer``)."""
    call, rig, log = make_call(CallDirection.OUTGOING, **kwargs)
    await call.start_outgoing("")
    if ring:
        rig.frame("ringing", {"callsid": CALLSID})
    if answer:
        payload = {"callsid": CALLSID, "sdp": "v=0 answer"}
        if token is not None:
            payload["reconnect"] = token
        rig.frame("answer", payload)
        await settle()
    return call, rig, log
