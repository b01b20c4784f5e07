"""Received RTP is handled where it arrives (voice/rtc/arrival.py), on a real call through the
exchange: no detour through aioice's queue and aiortc's reader task, same counters."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.rtp import is_rtcp

from ..conftest import until
from .helpers import hears, place_and_answer

pytestmark = pytest.mark.net


def is_rtp(data: bytes) -> bool:
    return bool(data) and 127 < data[0] < 192 and not is_rtcp(data)


async def test_rtp_skips_the_queue_and_aiortc_still_counts_it(make_phone):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880)
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    await hears(bob, 440)
    await hears(alice, 880)  # both ways, as before
    session = incoming._media
    connection = session._ice_connection()
    queued: list[bytes] = []
    queue_it = connection.data_received

    def counting(data: bytes, component: int) -> None:
        queued.append(data)
        queue_it(data, component)

    connection.data_received = counting
    dtls = session._transceiver.receiver.transport
    before = session.jitter_buffer.received
    counted_before = dtls._get_stats().popitem()[1].packetsReceived
    await until(lambda: session.jitter_buffer.received >= before + 25, what="25 RTP packets")
    arrived = session.jitter_buffer.received - before
    rtp_queued = sum(1 for d in queued if is_rtp(d))
    # Only a packet that came while the queue held a datagram (an RTCP report) is queued.
    assert rtp_queued <= arrived // 10, (rtp_queued, arrived)
    counted = dtls._get_stats().popitem()[1].packetsReceived - counted_before
    assert counted >= arrived  # aiortc's transport stats count what skipped its reader
    stats = (await session.counters())
    assert stats.packets_received >= session.jitter_buffer.received - 2
    await asyncio.sleep(0)
    await hears(bob, 440)
