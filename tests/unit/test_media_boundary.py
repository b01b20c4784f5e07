"""voice/rtc/session.py as the boundary to aiortc: one error type, a codec that never raises, and a
close that waits for (or cancels) an aiortc operation under way and always closes the peer
connection."""

from __future__ import annotations

import asyncio

import pytest
from aiortc import RTCSessionDescription

from piphone.pcm import Silence
from piphone.voice.device import Device
from piphone.voice.rtc import MediaError, MediaSession, MediaSettings, is_loopback
from piphone.voice.rtc import session as media_module
from piphone.voice.tokens import mint

LOOPBACK = ("127.0.0.1",)


def session() -> MediaSession:
    return MediaSession(MediaSettings(ice_addresses=LOOPBACK), Silence())


async def test_whatever_aiortc_raises_comes_out_as_media_error(monkeypatch):
    offerer, answerer = session(), session()
    try:
        await answerer.prepare_answer(await offerer.offer())

        async def broken():
            raise ValueError("None is not in list")

        monkeypatch.setattr(answerer.pc, "createAnswer", broken)
        with pytest.raises(MediaError, match="cannot create the answer: ValueError") as info:
            await answerer.answer()
        assert isinstance(info.value.__cause__, ValueError)
    finally:
        await offerer.close()
        await answerer.close()


async def test_the_codec_never_raises_even_when_aiortc_cannot_write_the_description():
    offerer, answerer = session(), session()
    offer = await offerer.offer()
    await answerer.prepare_answer(offer)
    answer = await answerer.answer()
    # what an unchecked offer leaves in aiortc: a description it cannot write out again
    broken = session()
    await broken.pc.setRemoteDescription(RTCSessionDescription(
        sdp=offer.replace("c=IN IP4 127.0.0.1", "c=IN IP4 127.0.0.1:0"), type="offer"))
    with pytest.raises(ValueError):
        broken.pc.remoteDescription  # noqa: B018
    assert broken.codec is None
    await broken.close()
    assert broken.pc.connectionState == "closed"
    await offerer.apply_answer(answer)
    assert offerer.codec == answerer.codec == "opus"
    await offerer.close()
    await answerer.close()


async def test_close_waits_for_an_operation_under_way_and_nothing_starts_after():
    offerer, answerer = session(), session()
    offer = await offerer.offer()
    preparing = asyncio.ensure_future(answerer.prepare_answer(offer))
    await asyncio.sleep(0)  # inside setRemoteDescription
    await answerer.close()
    with pytest.raises(MediaError, match="closed"):
        await preparing
    gatherer = answerer.pc.getTransceivers()[0].receiver.transport.transport.iceGatherer
    assert gatherer.getLocalCandidates() == []  # it never gathered on the closed connection
    with pytest.raises(MediaError, match="closed"):
        await answerer.offer()
    await offerer.close()


async def test_close_cancels_an_operation_that_outlives_the_bound(monkeypatch):
    monkeypatch.setattr(media_module, "CLOSE_WAIT", 0.05)
    stuck = session()
    task = stuck._start(asyncio.sleep(60))
    await asyncio.wait_for(stuck.close(), 2)
    assert task.cancelled() and stuck.pc.connectionState == "closed"


def test_loopback_hosts():
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "phone.localhost"):
        assert is_loopback(host), host
    for host in (None, "", "0.0.0.0", "192.168.1.2", "exchange.local",
                 "voice-js.roaming.twilio.com"):
        assert not is_loopback(host), host


async def test_a_device_offers_loopback_only_to_a_loopback_signaling_url():
    token = mint(identity="a", account_sid="AC" + "0" * 32, api_key_sid="SK" + "0" * 32,
                 api_key_secret="s" * 32)
    local = Device(token, signaling_url="ws://127.0.0.1:8089/signal")
    remote = Device(token, signaling_url="wss://exchange.example.com/signal")
    twilio = Device(token)
    assert local.media_settings.ice_loopback
    assert not remote.media_settings.ice_loopback and not twilio.media_settings.ice_loopback
    for device in (local, remote, twilio):
        await device.destroy()


async def test_the_port_reads_out_sdp_ice_packets_and_counters_without_aiortc_objects():
    offerer, answerer = session(), session()
    try:
        assert offerer.local_sdp == "" and not offerer.ice_completed
        assert offerer.packets_received == 0
        offer = await offerer.offer()
        assert offerer.local_sdp == offer
        await answerer.prepare_answer(offer)
        answer = await answerer.answer()
        assert answerer.local_sdp == answer
        await offerer.apply_answer(answer)
        await asyncio.gather(offerer.wait_connected(5), answerer.wait_connected(5))
        assert offerer.state == answerer.state == "connected"
        assert offerer.ice_completed and answerer.ice_completed
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while answerer.packets_received < 5 and loop.time() < deadline:
            await asyncio.sleep(0.02)
        counters = await answerer.counters()
        assert answerer.packets_received >= 5 and counters.packets_received >= 5
        assert counters.codec_name == "opus" and counters.bytes_received > 0
        assert counters.jitter is not None and counters.buffer_depth is not None
        sent = await offerer.counters()
        assert sent.packets_sent >= 5 and sent.bytes_sent > 0
    finally:
        await offerer.close()
        await answerer.close()


async def test_local_sdp_never_raises(monkeypatch):
    offerer = session()
    await offerer.offer()

    def unwritable(self):
        raise ValueError("cannot write the description out")

    monkeypatch.setattr(type(offerer.pc), "localDescription", property(unwritable))
    assert offerer.local_sdp == ""
    await offerer.close()


async def test_ice_servers_are_piphones_values_taken_from_any_shape_and_never_shown():
    from aiortc import RTCIceServer

    from piphone.voice.rtc import IceServer, to_ice_servers

    servers = to_ice_servers([RTCIceServer("turn:t.example:3478", "u", "s3cret"),
                              {"urls": ["stun:s.example:3478"]},
                              IceServer("stun:x.example")])
    assert servers == (IceServer("turn:t.example:3478", "u", "s3cret"),
                       IceServer(("stun:s.example:3478",)), IceServer("stun:x.example"))
    settings = MediaSettings(ice_servers=servers, ice_addresses=LOOPBACK)
    media = MediaSession(settings, Silence())
    assert "s3cret" not in repr(settings) and "s3cret" not in repr(media)
    given = media.pc._RTCPeerConnection__configuration.iceServers  # what aiortc got
    assert [(s.urls, s.username, s.credential) for s in given] == [
        ("turn:t.example:3478", "u", "s3cret"), (["stun:s.example:3478"], None, None),
        ("stun:x.example", None, None)]
    await media.close()
