"""Three-way conference through the real exchange (piphone's ``conference`` frame,
exchange/conference.py, voice/rtc/mixing.py): three Devices, each sending a tone of its own
frequency; once joined, each hears the other two and not itself (the spectrum of what it
receives, with numpy). When one leaves, the other two talk on, bridged."""

from __future__ import annotations

import numpy as np
import pytest

from piphone.voice import CallStatus

from ..conftest import until
from .helpers import Events, hears, place_and_answer

pytestmark = pytest.mark.net

ALICE, BOB, CAROL = 500.0, 700.0, 1100.0


def strengths(phone, frequencies, seconds: float = 0.6) -> dict[float, float]:
    """Each frequency's share of the strongest peak in what the phone heard lately."""
    rec = phone.recorder
    rate = rec.sample_rate or 48000
    x = rec.last(seconds).astype(np.float64)
    if len(x) < rate * seconds / 2:
        return {f: 0.0 for f in frequencies}
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    top = float(spectrum[1:].max()) or 1.0

    def near(f: float) -> float:
        bin_ = int(round(f * len(x) / rate))
        return float(spectrum[max(bin_ - 3, 1):bin_ + 4].max()) / top

    return {f: near(f) for f in frequencies}


def hears_only(phone, wanted: tuple[float, ...], unwanted: float) -> bool:
    found = strengths(phone, (*wanted, unwanted))
    return all(found[f] > 0.3 for f in wanted) and found[unwanted] < 0.05


async def test_each_of_three_hears_the_other_two(make_phone):
    alice = await make_phone("alice", tone=ALICE)
    bob = await make_phone("bob", tone=BOB)
    carol = await make_phone("carol", tone=CAROL)
    to_bob, at_bob, out_bob, _ = await place_and_answer(alice, bob)
    to_bob.hold()
    to_carol, at_carol, _, _ = await place_and_answer(alice, carol)
    await hears(carol, ALICE)
    to_carol.transfer(joining=to_bob, conference=True)
    await out_bob.wait("disconnect")  # alice's call to bob ends: bob is in carol's call now
    for phone, others, own in ((alice, (BOB, CAROL), ALICE), (bob, (ALICE, CAROL), BOB),
                               (carol, (ALICE, BOB), CAROL)):
        await until(lambda p=phone, o=others, s=own: hears_only(p, o, s), 10,
                    what=f"{phone.device.identity} hears {others} "
                         f"({strengths(phone, (*others, own))})")
    assert at_bob.status() is at_carol.status() is to_carol.status() is CallStatus.OPEN
    # carol leaves: alice and bob talk on, bridged again
    at_carol.disconnect()
    await hears(alice, BOB, timeout=10)
    await hears(bob, ALICE, timeout=10)
    assert to_carol.status() is at_bob.status() is CallStatus.OPEN


async def test_a_conference_needs_two_calls_of_the_requester(make_phone):
    alice = await make_phone("alice", tone=ALICE)
    bob = await make_phone("bob", tone=BOB)
    mallory = await make_phone("mallory", tone=CAROL)
    to_bob, at_bob, _, _ = await place_and_answer(alice, bob)
    to_mallory, _, _, _ = await place_and_answer(mallory, await make_phone("dave"))
    errors = Events(to_mallory, names=("error",))
    # mallory names alice's call (its CallSid is no secret): it is not hers
    to_mallory.transfer(joining=to_bob, conference=True)
    (error,) = await errors.wait("error")
    assert error.code == 31000
    await hears(bob, ALICE)
    assert to_bob.status() is CallStatus.OPEN
