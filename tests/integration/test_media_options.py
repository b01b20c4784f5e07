"""Media options on real aiortc sessions on 127.0.0.1 (issue 16, part C): the sockets a call
sends from carry DSCP EF (IP_TOS 0xB8) unless dscp is off, on a call through the exchange as
on a bare session; and a far end's maxaveragebitrate caps what we encode."""

from __future__ import annotations

import asyncio

import pytest

from piphone.pcm import Tone
from piphone.voice.rtc import MediaSession, MediaSettings, dscp

from .helpers import hears, place_and_answer

pytestmark = pytest.mark.net

LOOPBACK = ("127.0.0.1",)


async def connected_pair(offerer: MediaSettings, answerer: MediaSettings):
    a = MediaSession(offerer, source=Tone(440))
    b = MediaSession(answerer, source=Tone(660))
    await b.prepare_answer(await a.offer())
    await a.apply_answer(await b.answer())
    await asyncio.wait_for(asyncio.gather(a.wait_connected(), b.wait_connected()), 10)
    return a, b


@pytest.mark.parametrize("on", [True, False])
async def test_media_sockets_are_marked_dscp_ef_unless_turned_off(on):
    a, b = await connected_pair(MediaSettings(ice_addresses=LOOPBACK, dscp=on),
                                MediaSettings(ice_addresses=LOOPBACK))
    try:
        sockets = a.media_sockets()
        assert sockets
        assert {dscp.traffic_class(s) for s in sockets} == {0xB8 if on else 0}
        assert {dscp.traffic_class(s) for s in b.media_sockets()} == {0xB8}  # the default
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_a_call_through_the_exchange_sends_from_marked_sockets(make_phone):
    alice = await make_phone("alice")
    bob = await make_phone("bob", tone=660, dscp=False)
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    await hears(alice, 660)
    assert {dscp.traffic_class(s) for s in outgoing._media.media_sockets()} == {0xB8}
    assert {dscp.traffic_class(s) for s in incoming._media.media_sockets()} == {0}


async def test_the_far_ends_max_average_bitrate_caps_what_we_encode():
    """The answerer asks for at most 10 kbit/s: the offerer's Opus sends about that (its
    default is 32 kbit/s), while the answerer still sends its own 32."""
    a, b = await connected_pair(MediaSettings(ice_addresses=LOOPBACK),
                                MediaSettings(ice_addresses=LOOPBACK,
                                              max_average_bitrate=10_000))
    try:
        await asyncio.sleep(0.5)  # past the encoders' start
        before = await a.counters(), await b.counters()
        await asyncio.sleep(2.0)
        after = await a.counters(), await b.counters()
        rates = [(y.bytes_sent - x.bytes_sent) * 8 / 2.0 for x, y in zip(before, after,
                                                                          strict=True)]
        capped, free = rates  # bits/s, RTP headers included (~4.8 kbit/s at 50 packets/s)
        assert capped < 18_000, rates
        assert free > 25_000, rates
    finally:
        await asyncio.gather(a.close(), b.close())
