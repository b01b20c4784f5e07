"""The far end's audio reaches a PCM sink (the earpiece) as each frame is decoded."""

from __future__ import annotations

import asyncio

import pytest

from piphone.pcm import Recorder

from ..conftest import until
from .helpers import hears, place_and_answer

pytestmark = pytest.mark.net


class FailsOnce(Recorder):
    """An earpiece whose driver fails on one frame (an ALSA hiccup)."""

    def __init__(self) -> None:
        super().__init__(seconds=5)
        self.writes = 0

    def write(self, samples, sample_rate: int) -> None:
        self.writes += 1
        if self.writes == 10:
            raise OSError("the earpiece failed on one frame")
        super().write(samples, sample_rate)


async def test_a_sink_that_fails_on_one_frame_loses_that_frame_not_the_call_s_audio(
        make_phone, caplog):
    alice = await make_phone("alice", tone=440)
    sinks: list[FailsOnce] = []
    bob = await make_phone("bob", tone=880,
                           audio_sink=lambda: sinks.append(FailsOnce()) or sinks[-1])
    bob.recorders = sinks  # the helpers read bob.recorder
    await place_and_answer(alice, bob)
    await hears(alice, 880)
    await until(lambda: sinks[-1].writes > 10, what="the earpiece's failure")
    written = sinks[-1].writes
    await until(lambda: sinks[-1].writes > written + 25, what="audio after the failure")
    await hears(bob, 440)
    assert caplog.text.count("the audio sink failed on a frame") == 1


async def test_opus_is_heard_as_48_khz_mono_frames(make_phone):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880)
    outgoing, _, _, _ = await place_and_answer(alice, bob)
    await hears(alice, 880)
    remote = outgoing.get_remote_stream()
    frames = [await asyncio.wait_for(remote.recv(), 2) for _ in range(5)]
    assert {(len(f.layout.channels), f.sample_rate, f.samples) for f in frames} == {
        (1, 48000, 960)}


class WontStart(Recorder):
    """An earpiece that cannot be opened (unplugged between ringing and answering)."""

    def start(self) -> None:
        raise OSError("no such device")


async def test_a_sink_that_cannot_start_leaves_the_call_up_and_the_other_way_heard(
        make_phone, caplog):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880, audio_sink=WontStart)
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    await hears(alice, 880)  # bob's microphone still reaches alice
    assert "the audio sink did not start" in caplog.text
    session = incoming._media
    received = session.jitter_buffer.received
    await until(lambda: session.jitter_buffer.received > received + 25, what="alice's audio")
    assert session.receive_tap.direct is not None  # dropped as decoded, not queued
    remote = session._remote
    assert remote is not None and remote._queue.qsize() == 0
