"""A real call through the exchange with faults on the callee's receive path: piphone's jitter
buffer (voice/rtc/jitter.py) puts reordered packets back, drops duplicates, conceals a lost one,
and its depth returns to its floor; the tone still arrives.

Faults are injected where the callee's receiver takes RTP from its DTLS transport (aiortc's
``RTCRtpReceiver._handle_rtp_packet``, wrapped on that one receiver): deterministic, and
everything before it (ICE, DTLS, SRTP, the exchange) is the real path.
"""

from __future__ import annotations

import asyncio

import pytest

from piphone.voice.rtc.jitter import AudioJitterBuffer

from ..conftest import until
from .helpers import hears, place_and_answer

pytestmark = pytest.mark.net

DROP, SWAP, DUPLICATE = 60, 90, 120  # which packets (counted at bob's receiver) to spoil


class Faults:
    """Drops packet DROP, swaps SWAP and SWAP+1, delivers DUPLICATE twice; records the
    buffer's depth after every packet."""

    def __init__(self, receiver, buffer: AudioJitterBuffer) -> None:
        self.count = 0
        self.depths: list[int] = []
        self.buffer = buffer
        self._held = None
        handle = receiver._handle_rtp_packet

        async def faulty(packet, arrival_time_ms):
            self.count += 1
            n = self.count
            if n == DROP:
                return
            if n == SWAP:
                self._held = (packet, arrival_time_ms)
                return
            await self._deliver(handle, packet, arrival_time_ms)
            if n == SWAP + 1:
                await self._deliver(handle, *self._held)
            if n == DUPLICATE:
                await self._deliver(handle, packet, arrival_time_ms)

        receiver._handle_rtp_packet = faulty

    async def _deliver(self, handle, packet, arrival_time_ms) -> None:
        await handle(packet, arrival_time_ms)
        self.depths.append(self.buffer.depth)


async def test_loss_reorder_and_duplicate_on_a_real_call(make_phone):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880)
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    media = incoming._media
    receiver = media.pc.getTransceivers()[0].receiver
    buffer = media.jitter_buffer
    assert isinstance(buffer, AudioJitterBuffer)
    assert receiver._RTCRtpReceiver__jitter_buffer is buffer
    faults = Faults(receiver, buffer)

    await until(lambda: faults.count >= DUPLICATE + 60, timeout=10,
                what=f"{DUPLICATE + 60} packets at bob")
    await hears(bob, 440)
    s = buffer.stats()
    assert s.lost == 1 and s.concealed == 1  # the dropped packet, concealed by Opus PLC
    assert s.late == 0  # the swapped pair waited for its slot
    assert s.duplicates >= 1
    # The buffer held one frame, two at most while a packet was missing, never more...
    assert max(faults.depths[10:]) <= 2
    # ...and is back to its floor: one frame (20 ms) behind.
    await until(lambda: buffer.target_depth == buffer.min_depth == buffer.depth == 1,
                timeout=5, what=f"depth back to 1 (stats {buffer.stats()})")
    assert outgoing.status() == incoming.status()
    await asyncio.sleep(0)


async def test_network_jitter_deepens_the_buffer_and_calm_brings_it_back(make_phone, netfault):
    """Real jitter from the UDP relay (up to 60 ms extra, so packets also arrive out of order):
    the buffer deepens to absorb it, never past its bound, and once the network is calm again
    it returns to one frame instead of keeping the delay it grew."""
    alice = await make_phone("alice", tone=440, signaling_url=netfault.url)
    bob = await make_phone("bob", tone=880)
    outgoing, _, _, _ = await place_and_answer(alice, bob)
    buffer = outgoing._media.jitter_buffer
    await hears(alice, 880)
    await until(lambda: buffer.depth == 1, timeout=5, what="a clean start at one frame")

    netfault.media.set(jitter=0.06)
    deepest = 0

    def deepened() -> bool:
        nonlocal deepest
        deepest = max(deepest, buffer.target_depth)
        return deepest >= 3

    await until(deepened, timeout=10, what=f"depth grown under jitter ({buffer.stats()})")
    assert buffer.target_depth <= buffer.max_depth

    netfault.media.set(jitter=0.0)
    await until(lambda: buffer.target_depth == buffer.depth == 1, timeout=15,
                what=f"depth back to 1 after the jitter ({buffer.stats()})")
    await hears(alice, 880)
