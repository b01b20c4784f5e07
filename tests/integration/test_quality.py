"""Call quality on real calls through the exchange, with network trouble from tests/netfault.py:
samples agree with what the relay counted, MOS follows the E-model, warnings rise and clear."""

from __future__ import annotations

import pytest

from piphone.voice.quality import mos

from .helpers import Events, place_and_answer

pytestmark = pytest.mark.net

QUALITY_EVENTS = ("sample", "volume", "warning", "warning-cleared")


async def test_clean_call_samples(make_phone):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=660)
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    events = Events(outgoing, QUALITY_EVENTS)
    await events.wait("sample", 4, timeout=8)
    for (s,) in events.all("sample"):
        print(s.to_dict())
    print(events.all("volume")[:5], len(events.all("volume")))
    print(events.all("warning"))
    sample = events.all("sample")[-1][0]
    assert sample.codec_name == "opus"
    assert 45 <= sample.packets_sent <= 55 and 45 <= sample.packets_received <= 55
    assert sample.mos == pytest.approx(mos(sample.rtt, sample.jitter, 0.0))
    assert sample.mos > 4.3
