"""Call quality on real calls through the exchange, with network trouble from tests/netfault.py
between alice and the exchange: samples agree with what the relay counted, MOS follows the
E-model, and the SDK's warnings (and piphone's one-way-audio) rise and clear."""

from __future__ import annotations

import asyncio

import pytest

from piphone.voice.quality import mos

from ..conftest import until
from .helpers import Events, place_and_answer

pytestmark = pytest.mark.net

QUALITY_EVENTS = ("sample", "volume", "warning", "warning-cleared")


async def warned(events: Events, name: str, event: str = "warning",
                 timeout: float = 25.0) -> tuple:
    """The args of the first ``event`` (warning or warning-cleared) named ``name``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    count = 1
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"no {event} {name!r} within {timeout} s; got "
                                 f"{[a[0] for a in events.all(event)]}")
        args = await events.wait(event, count, left)
        if args[0] == name:
            return args
        count += 1


async def call_through_relay(make_phone, netfault, **bob_options):
    """alice (behind the relay) calls bob (straight to the exchange); alice's call, bob's
    call, and alice's quality events."""
    alice = await make_phone("alice", tone=440, signaling_url=netfault.url)
    bob = await make_phone("bob", tone=660, **bob_options)
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    return outgoing, incoming, Events(outgoing, QUALITY_EVENTS)


async def test_clean_call_samples_agree_with_the_relay(make_phone, netfault):
    outgoing, _, events = await call_through_relay(make_phone, netfault)
    relay = netfault.media
    (first,) = await events.wait("sample", 1, timeout=5)
    assert first.mos is None
    (sample,) = await events.wait("sample", 4, timeout=8)
    # about 50 packets of 20 ms a second each way, and 20 volume events
    assert sample.codec_name == "opus"
    # (bounds allow a late timer on a busy machine)
    assert 40 <= sample.packets_sent <= 60 and 40 <= sample.packets_received <= 60
    assert sample.bytes_sent > 0 and sample.bytes_received > 0
    volume_times = events.times("volume")
    rate = (len(volume_times) - 1) / (volume_times[-1] - volume_times[0])
    assert 17 <= rate <= 23  # every 50 ms
    assert all(0.0 <= i <= 1.0 and 0.0 <= o <= 1.0 for i, o in events.all("volume"))
    # a -12 dBFS tone each way: RMS 32767 * 10**(-12/20) / sqrt(2), and volume at the top
    assert sample.audio_input_level == pytest.approx(5815, rel=0.02)
    assert sample.audio_output_level == pytest.approx(5815, rel=0.05)
    assert events.all("volume")[-1] == (1.0, 1.0)
    # the relay carried RTP plus a few STUN/DTLS/RTCP datagrams
    totals = sample.totals
    assert relay.to_client.forwarded - 40 <= totals.packets_received <= relay.to_client.forwarded
    assert relay.to_exchange.forwarded - 40 <= totals.packets_sent <= relay.to_exchange.forwarded
    assert totals.packets_lost == 0 and sample.packets_lost_fraction == 0
    assert sample.rtt is not None and sample.rtt < 50
    assert sample.mos == pytest.approx(mos(sample.rtt, sample.jitter, 0.0))
    assert sample.mos > 4.3  # the E-model's ceiling is 4.43
    assert sample.jitter_buffer_depth is not None
    assert events.all("warning") == [] or {a[0] for a in events.all("warning")} == {
        "constant-audio-input-level"}  # a pure tone is a constant level


async def test_packet_loss_raises_high_packet_loss_and_clears_when_it_stops(make_phone,
                                                                            netfault):
    outgoing, _, events = await call_through_relay(make_phone, netfault)
    relay = netfault.media
    await events.wait("sample", 1, timeout=5)
    relay.to_client.reset_counters()
    relay.to_client.loss = 0.05
    before = outgoing.quality.samples[-1].totals
    name, data = await warned(events, "high-packet-loss")
    assert data["name"] == "packetsLostFraction"
    assert data["threshold"] == {"name": "max", "value": 1}
    assert len(data["values"]) == 5 and sum(v > 1 for v in data["values"]) >= 3
    assert [s.packets_lost_fraction for s in data["samples"]] == data["values"]
    lossy = [s for s in data["samples"] if s.packets_lost_fraction > 1 and s.mos is not None]
    assert lossy
    for s in lossy:  # MOS falls with loss as the E-model says
        assert s.mos == pytest.approx(mos(s.rtt, s.jitter, s.packets_lost_fraction))
        assert s.mos < 4.3
    # the lost counter agrees with what the relay dropped (RTCP/STUN are a few of those)
    now = outgoing.quality.samples[-1].totals
    lost = now.packets_lost - before.packets_lost
    assert relay.to_client.dropped - 5 <= lost <= relay.to_client.dropped + 5
    relay.to_client.loss = 0.0
    await warned(events, "high-packet-loss", "warning-cleared")
    assert outgoing.quality.raised.count("high-packet-loss") == 1


async def test_450_ms_round_trip_raises_high_rtt(make_phone, netfault):
    netfault.media.set(delay=0.225)
    outgoing, _, events = await call_through_relay(make_phone, netfault)
    _, data = await warned(events, "high-rtt")
    assert data["name"] == "rtt" and data["threshold"] == {"name": "max", "value": 400}
    assert all(v > 400 for v in data["values"][-3:])
    sample = outgoing.quality.samples[-1]
    assert sample.mos == pytest.approx(mos(sample.rtt, sample.jitter,
                                           sample.packets_lost_fraction))
    assert sample.mos < 4.0  # latency costs MOS: 4.43 on loopback


async def test_network_jitter_raises_high_jitter_and_calm_clears_it(make_phone, netfault):
    outgoing, _, events = await call_through_relay(make_phone, netfault)
    await events.wait("sample", 1, timeout=5)
    netfault.media.to_client.jitter = 0.3  # uniform 0-300 ms: about 50 ms RFC 3550 jitter
    _, data = await warned(events, "high-jitter")
    assert data["name"] == "jitter" and sum(v > 30 for v in data["values"]) >= 3
    netfault.media.to_client.jitter = 0.0
    await warned(events, "high-jitter", "warning-cleared")


async def test_far_media_stopping_raises_low_bytes_received(make_phone, netfault):
    outgoing, _, events = await call_through_relay(make_phone, netfault)
    await events.wait("sample", 1, timeout=5)
    netfault.media.to_client.blackhole = True
    _, data = await warned(events, "low-bytes-received")
    assert data["values"][-3:] == [0, 0, 0]
    assert data["threshold"] == {"name": "min", "value": 1}
    netfault.media.to_client.blackhole = False
    await warned(events, "low-bytes-received", "warning-cleared")


async def test_far_end_sending_silence_raises_one_way_audio(make_phone, netfault):
    outgoing, incoming, events = await call_through_relay(make_phone, netfault)
    incoming.mute()  # bob's packets keep coming, with digital silence in them
    _, data = await warned(events, "one-way-audio")
    assert data["direction"] == "receive"
    assert all(s.packets_received > 40 for s in data["samples"])
    assert outgoing.quality.samples[-1].audio_output_level == 0
    incoming.mute(False)
    await warned(events, "one-way-audio", "warning-cleared")


async def test_far_end_receiving_nothing_we_send_raises_one_way_audio(make_phone, netfault):
    outgoing, _, events = await call_through_relay(make_phone, netfault)
    await events.wait("sample", 1, timeout=5)
    netfault.media.to_exchange.blackhole = True  # we send; RTCP reports still come back
    _, data = await warned(events, "one-way-audio")
    assert data["direction"] == "send"
    assert all(s.packets_sent > 40 for s in data["samples"])
    netfault.media.to_exchange.blackhole = False
    await warned(events, "one-way-audio", "warning-cleared")


async def test_conditions_on_a_real_call_and_monitor_stops_at_hang_up(make_phone):
    alice = await make_phone("alice")
    bob = await make_phone("bob", tone=660)
    outgoing, _, _, out_events = await place_and_answer(alice, bob)
    events = Events(outgoing, QUALITY_EVENTS)
    outgoing.set_condition("audio-device-lost", True)
    assert events.all("warning") == [("audio-device-lost", {"name": "audio-device-lost"})]
    outgoing.set_condition("audio-device-lost", False)
    assert events.all("warning-cleared") == [("audio-device-lost",)]
    await events.wait("sample", 1, timeout=5)
    outgoing.disconnect()
    await outgoing.wait_closed()
    count = len(events.log)
    await asyncio.sleep(1.2)  # a sample period after hang-up: nothing more comes
    assert len(events.log) == count


async def test_the_exchange_logs_each_legs_quality(make_phone, netfault, exchange):
    outgoing, _, events = await call_through_relay(make_phone, netfault)
    await events.wait("sample", 1, timeout=5)
    netfault.media.to_exchange.loss = 0.05  # what alice sends arrives lossy at the exchange

    def alice_leg_warned() -> bool:
        return any(party == "alice" and "high-packet-loss" in monitor.raised
                   for party, monitor in exchange.records.quality_of(outgoing.call_sid))

    await until(alice_leg_warned, 25, what="high-packet-loss on alice's leg at the exchange")
    assert "high-packet-loss" not in outgoing.quality.raised  # alice receives cleanly
    outgoing.disconnect()
    await outgoing.wait_closed()
    await until(lambda: exchange.records.log.recent()[0].outcome is not None, 5,
                what="the exchange's row ended")
    (row,) = exchange.records.log.recent()
    assert "alice:high-packet-loss" in row.warnings
    assert row.mos_average is not None and row.mos_minimum < row.mos_average


async def test_media_lost_raises_ice_connectivity_lost_until_reconnected(make_phone, netfault):
    outgoing, _, events = await call_through_relay(make_phone, netfault)
    reconnect = Events(outgoing, ("reconnecting", "reconnected"))
    netfault.media.set(blackhole=True)
    name, _ = await warned(events, "ice-connectivity-lost", timeout=8)
    (error,) = await reconnect.wait("reconnecting", timeout=5)
    assert error.code == 53405
    netfault.media.set(blackhole=False)
    await reconnect.wait("reconnected", timeout=10)
    await warned(events, "ice-connectivity-lost", "warning-cleared", timeout=1)
