"""The fault rig itself (tests/netfault.py): media really goes through the relay, faults bite,
and the proxy drops and refuses signaling. Other tests trust these properties."""

from __future__ import annotations

import asyncio

import pytest

from piphone.voice import DeviceState

from ..conftest import until
from .helpers import hears, place_and_answer

pytestmark = pytest.mark.net


async def test_media_goes_through_the_relay_both_ways(make_phone, netfault):
    alice = await make_phone("alice", tone=440, signaling_url=netfault.url)
    bob = await make_phone("bob", tone=660)  # straight to the exchange
    await place_and_answer(alice, bob)
    await hears(alice, 660)
    await hears(bob, 440)
    relay = netfault.media
    await until(lambda: relay.to_client.forwarded > 50 and relay.to_exchange.forwarded > 50,
                5, what="50 packets each way through the relay")
    # An answerer may send its first ICE check before its answer (and so its front) passed.
    assert relay.unknown <= 3


async def test_loss_is_seeded_and_counted(make_phone, netfault):
    netfault.media.set(loss=0.2)
    alice = await make_phone("alice", signaling_url=netfault.url)
    bob = await make_phone("bob", tone=660)
    await place_and_answer(alice, bob)
    to_alice = netfault.media.to_client
    await until(lambda: to_alice.forwarded + to_alice.dropped >= 200, 10, what="200 packets")
    share = to_alice.dropped / (to_alice.forwarded + to_alice.dropped)
    assert 0.1 < share < 0.3


async def test_blackhole_stops_media_and_restoring_brings_it_back(make_phone, netfault):
    alice = await make_phone("alice", signaling_url=netfault.url)
    bob = await make_phone("bob", tone=660)
    await place_and_answer(alice, bob)
    await hears(alice, 660)
    netfault.media.set(blackhole=True)
    before = netfault.media.to_client.forwarded
    await asyncio.sleep(0.3)  # a stretch of time with the hole open is the point here
    assert netfault.media.to_client.forwarded == before
    assert netfault.media.to_client.dropped > 5
    netfault.media.set(blackhole=False)
    await until(lambda: netfault.media.to_client.forwarded > before + 10, 5,
                what="media after the hole closed")


async def test_delay_holds_packets(make_phone, netfault):
    netfault.media.set(delay=0.2)
    alice = await make_phone("alice", signaling_url=netfault.url)
    bob = await make_phone("bob", tone=660)
    await place_and_answer(alice, bob)  # ICE and DTLS survive a 400 ms round trip
    await hears(alice, 660, timeout=8)


async def test_block_drops_and_refuses_signaling_until_restored(make_phone, netfault):
    alice = await make_phone("alice", signaling_url=netfault.url)
    assert netfault.connections == 1
    netfault.block()
    await asyncio.sleep(0.5)  # the Device retries against a refusing proxy meanwhile
    assert netfault.connections == 1
    netfault.restore()
    await until(lambda: netfault.connections >= 2, 10, what="the Device reconnecting")
    await until(lambda: alice.device.state is DeviceState.REGISTERED, 10,
                what="registered again")
