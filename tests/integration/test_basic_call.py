import asyncio

import pytest

from piphone.pcm import dominant_frequency
from piphone.voice import CallStatus

from ..conftest import record_events, until

CALL_EVENTS = ("accept", "cancel", "disconnect", "error", "mute", "reject", "ringing")


def heard(phone, seconds: float = 0.5) -> float | None:
    rec = phone.recorder
    return dominant_frequency(rec.last(seconds), rec.sample_rate or 48000)


async def test_call_rings_answers_and_carries_audio_both_ways(make_phone):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880)
    out_events: list = []
    call = await alice.device.connect({"To": "bob"})
    record_events(call, CALL_EVENTS, out_events)
    incoming = await bob.next_call()
    assert incoming.status() is CallStatus.PENDING
    assert incoming.parameters["From"] == "client:alice"
    assert incoming.parameters["To"] == "client:bob"
    assert incoming.parameters["CallSid"].startswith("CA")
    in_events: list = []
    record_events(incoming, CALL_EVENTS, in_events)
    await until(lambda: call.status() is CallStatus.RINGING, what="ringing")
    await incoming.accept()
    await until(lambda: call.status() is CallStatus.OPEN, what="caller open")
    assert incoming.status() is CallStatus.OPEN
    await bob.recorder.wait_for_frames(40)
    await alice.recorder.wait_for_frames(40)
    assert heard(bob) == pytest.approx(440, abs=10)
    assert heard(alice) == pytest.approx(880, abs=10)
    incoming.disconnect()
    await asyncio.wait_for(call.wait_closed(), 5)
    assert [e[0] for e in out_events] == ["ringing", "accept", "disconnect"]
    assert [e[0] for e in in_events] == ["accept", "disconnect"]
