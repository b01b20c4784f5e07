"""Call.get_local_stream / get_remote_stream through a real media reconnection (issue 13): as
in Twilio's SDK, a stream taken before the network cut carries audio after ``reconnected``,
and reading it takes nothing from what the call sends or plays."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.mediastreams import MediaStreamError

from piphone.pcm import Recorder, dominant_frequency
from piphone.voice import CallStatus
from piphone.voice.reconnect import ReconnectSettings
from piphone.voice.rtc.tracks import play

from .helpers import Events, hears, place_and_answer
from .test_reconnect_signaling import RECONNECT_EVENTS

pytestmark = pytest.mark.net

QUICK = ReconnectSettings(rtp_timeout=1.0)


async def tone_of(recorder: Recorder, frames: int = 25) -> float | None:
    """The dominant frequency of the next ``frames`` frames the recorder gets (5 s at most)."""
    await asyncio.wait_for(recorder.wait_for_frames(frames), 5)
    return dominant_frequency(recorder.last(0.4), recorder.sample_rate or 48_000)


async def sink_frames_in(phone, seconds: float) -> int:
    before = phone.recorder.frames
    await asyncio.sleep(seconds)
    return phone.recorder.frames - before


async def test_streams_taken_before_a_network_cut_carry_audio_after_reconnected(
        make_phone, netfault, exchange):
    alice = await make_phone("alice", tone=440, signaling_url=netfault.url, reconnect=QUICK)
    bob = await make_phone("bob", tone=660)
    outgoing, _, _, _ = await place_and_answer(alice, bob)
    out = Events(outgoing, RECONNECT_EVENTS)
    await hears(alice, 660)
    remote, local = outgoing.get_remote_stream(), outgoing.get_local_stream()
    heard, sent = Recorder(seconds=2), Recorder(seconds=2)
    readers = [asyncio.ensure_future(play(remote, heard)),
               asyncio.ensure_future(play(local, sent))]
    try:
        assert await tone_of(heard) == pytest.approx(660, abs=15)
        assert await tone_of(sent) == pytest.approx(440, abs=15)
        # a copy: the phone's own sink still gets every frame (50 a second)
        assert await sink_frames_in(alice, 1.0) >= 45

        netfault.media.set(blackhole=True)
        await out.wait("reconnecting", timeout=5)
        netfault.media.set(blackhole=False)
        await out.wait("reconnected", timeout=10)
        assert outgoing._reconnection.media_attempts >= 1  # a new peer connection carries it

        assert outgoing.get_remote_stream() is remote and outgoing.get_local_stream() is local
        heard.clear()
        sent.clear()
        assert await tone_of(heard) == pytest.approx(660, abs=15)
        assert await tone_of(sent) == pytest.approx(440, abs=15)
        await hears(bob, 440)  # reading the local stream took nothing from what is sent
    finally:
        outgoing.disconnect()
        await asyncio.wait_for(asyncio.gather(*readers), 5)  # both streams end with the call
    assert outgoing.status() is CallStatus.CLOSED
    for stream in (remote, local):
        with pytest.raises(MediaStreamError):
            await stream.recv()
