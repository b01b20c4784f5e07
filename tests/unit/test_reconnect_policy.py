"""reconnect.py without a network: settings, the RTP watchdog, and the signaling side of a
call's reconnection driven by frames (what is sent, which events, which statuses)."""

from __future__ import annotations

import asyncio
import random

import pytest

from piphone.pcm import Silence
from piphone.voice import protocol
from piphone.voice.call import Call, CallDirection, CallStatus
from piphone.voice.errors import TwilioError
from piphone.voice.reconnect import ReconnectSettings, RtpWatchdog
from piphone.voice.rtc import MediaSettings
from piphone.voice.rtc.tracks import DrainSink


def test_settings_are_checked_and_backoff_grows_to_its_cap():
    with pytest.raises(ValueError, match="rtp_timeout"):
        ReconnectSettings(rtp_timeout=0)
    with pytest.raises(ValueError, match="give_up"):
        ReconnectSettings(give_up=-1)
    s = ReconnectSettings(backoff_first=0.1, backoff_factor=2, backoff_cap=0.5,
                          backoff_jitter=0.2)
    rng = random.Random(1)
    pauses = [s.backoff(n, rng) for n in range(8)]
    assert 0.08 <= pauses[0] <= 0.12 and 0.16 <= pauses[1] <= 0.24
    assert all(0.4 <= p <= 0.6 for p in pauses[3:])  # capped (with jitter)


async def test_watchdog_fires_once_when_packets_stop_and_never_while_they_flow():
    count = [0]
    lost = asyncio.Event()
    fired = []

    def on_lost():
        fired.append(count[0])
        lost.set()

    dog = RtpWatchdog(lambda: count[0], timeout=0.3, on_lost=on_lost, interval=0.02)
    dog.start()
    for _ in range(30):  # 0.6 s of packets arriving: twice the timeout, no alarm
        count[0] += 1
        await asyncio.sleep(0.02)
    assert not lost.is_set() and dog.running
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(lost.wait(), 2)
    waited = asyncio.get_running_loop().time() - started
    assert 0.25 <= waited < 1.0
    assert fired == [30] and not dog.running
    dog.stop()  # idempotent


def make_call(direction=CallDirection.INCOMING, token="tok1", **settings):
    sent: list[tuple[str, dict, bool]] = []

    def send(type_, payload, retry=True):
        sent.append((type_, payload, retry))
        return True

    call = Call(direction=direction, send=send, media_settings=MediaSettings(),
                source=Silence(), sink=DrainSink(), parameters={"CallSid": "CA1"},
                reconnect_token=token, reconnect_settings=ReconnectSettings(**settings))
    events: list[tuple] = []
    for name in ("reconnecting", "reconnected", "error", "disconnect", "cancel", "status"):
        call.on(name, lambda *a, _n=name: events.append((_n, *a)))
    return call, sent, events


def open_call(call):
    call._answered = True
    call._set_status(CallStatus.OPEN)


async def test_signaling_loss_resumes_with_the_reconnect_token():
    call, sent, events = make_call()
    open_call(call)
    events.clear()
    call._reconnection.signaling_lost()
    assert call.status() is CallStatus.RECONNECTING
    (_, status), (name, error) = events
    assert status is CallStatus.RECONNECTING and name == "reconnecting"
    assert isinstance(error, TwilioError) and error.code == 53001
    call._reconnection.signaling_connected()
    (type_, payload, retry), = sent
    assert type_ == "invite" and payload["reconnect"] == "tok1" and payload["callsid"] == "CA1"
    assert retry is False  # a stale resume must not go out on a later socket
    call.handle_frame(protocol.Frame("answer", {"callsid": "CA1", "sdp": "x",
                                                "reconnect": "tok2"}))
    assert call.status() is CallStatus.OPEN
    assert [e[0] for e in events] == ["status", "reconnecting", "status", "reconnected"]
    assert call._reconnect_token == "tok2"  # the next resume uses the newest token
    call._close()


async def test_loss_before_the_answer_ends_the_call():
    ringing, sent, events = make_call(CallDirection.OUTGOING, token=None)
    ringing._set_status(CallStatus.RINGING)
    events.clear()
    ringing._reconnection.signaling_lost()
    assert ringing.status() is CallStatus.CLOSED
    names = [e[0] for e in events if e[0] != "status"]
    assert names == ["error", "disconnect"] and events[0][1].code == 53001
    pending, _, events = make_call()  # an incoming call still ringing
    pending._reconnection.signaling_lost()
    assert [e[0] for e in events if e[0] != "status"] == ["error", "cancel"]
    assert pending.status() is CallStatus.CLOSED


async def test_refused_token_and_signaling_give_up_end_the_waiting_call():
    call, sent, events = make_call()
    open_call(call)
    call._reconnection.signaling_lost()
    call._reconnection.token_refused(TwilioError(20104, "access token expired"))
    assert call.status() is CallStatus.CLOSED
    assert [e[0] for e in events if e[0] not in ("status", "reconnecting")] == [
        "error", "disconnect"]
    assert not [s for s in sent if s[0] == "hangup"]  # the stream is not authenticated
    slow, _, events = make_call(signaling_give_up=0.2)
    open_call(slow)
    slow._reconnection.signaling_lost()
    closed = asyncio.Event()
    slow.on("disconnect", lambda c: closed.set())
    await asyncio.wait_for(closed.wait(), 3)
    errors = [e[1] for e in events if e[0] == "error"]
    assert [e.code for e in errors] == [53001]
