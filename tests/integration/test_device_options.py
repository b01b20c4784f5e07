"""The Device's options and state as Twilio's SDK has them (issue 16, part C): is_busy (an
active call, not a ringing one), connect() refused with InvalidStateError, disconnect_all,
update_options between calls (and what it refuses during one), rtc_configuration on connect,
allow_incoming_while_busy, app_name/app_version in Insights events, max_average_bitrate on
the wire, and tokenWillExpire again after every update_token."""

from __future__ import annotations

import asyncio

import pytest

from piphone.errors import InvalidArgumentError, InvalidStateError
from piphone.pcm import Silence
from piphone.voice import CallStatus, DeviceState, protocol
from piphone.voice.rtc import IceServer, MediaSession, MediaSettings
from piphone.voice.tokens import mint

from .helpers import DEVICE_EVENTS, Events, hears, place_and_answer, place_ringing
from .test_feedback_and_calllog import Gateway

pytestmark = pytest.mark.net


async def test_is_busy_is_an_active_call_and_connect_is_refused_then(make_phone):
    alice = await make_phone("alice")
    bob = await make_phone("bob", tone=660)
    assert not alice.device.is_busy
    outgoing, incoming, out, inc = await place_ringing(alice, bob)
    # The SDK's isBusy: the caller's call is active from connect(); a ringing one is not.
    assert alice.device.is_busy and not bob.device.is_busy
    with pytest.raises(InvalidStateError, match="already active"):
        await alice.device.connect({"To": "bob"})
    await asyncio.wait_for(incoming.accept(), 5)
    await out.wait("accept")
    assert bob.device.is_busy
    with pytest.raises(InvalidStateError, match="already active"):
        await bob.device.connect({"To": "alice"})
    outgoing.disconnect()
    await inc.wait("disconnect")
    assert not alice.device.is_busy and not bob.device.is_busy
    await alice.device.destroy()
    with pytest.raises(InvalidStateError, match="destroyed"):
        await alice.device.connect({"To": "bob"})
    with pytest.raises(InvalidStateError):
        alice.device.update_options(codec_preferences=("pcmu",))


async def test_disconnect_all_hangs_up_every_call(make_phone):
    alice = await make_phone("alice")
    bob = await make_phone("bob", tone=660)
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    bob.device.disconnect_all()
    await out.wait("disconnect")
    await inc.wait("disconnect")
    assert bob.device.calls == [] and not bob.device.is_busy
    assert incoming.status() is CallStatus.CLOSED and outgoing.status() is CallStatus.CLOSED
    alice.device.disconnect_all()  # nothing to hang up: nothing happens


async def test_update_options_between_calls_and_what_a_call_forbids(make_phone, netfault,
                                                                    wire):
    alice = await make_phone("alice")
    bob = await make_phone("bob", tone=660)
    events = Events(alice.device, DEVICE_EVENTS)
    alice.device.update_options(codec_preferences=("pcmu",), app_name="desk")
    outgoing, _, out, _ = await place_and_answer(alice, bob)
    assert outgoing.codec == "pcmu"  # the next call uses the new options
    await hears(alice, 660)
    # During a call: the signaling URL may not move (the SDK's rule); the rest may change
    # and the call keeps what it was made with.
    with pytest.raises(InvalidStateError, match="Cannot change Edge"):
        alice.device.update_options(signaling_url=netfault.url)
    alice.device.update_options(codec_preferences=("opus", "pcmu"))
    assert outgoing.codec == "pcmu" and alice.device.options.app_name == "desk"
    with pytest.raises(InvalidArgumentError, match="unknown Device option"):
        alice.device.update_options(codeec_preferences=("pcmu",))
    outgoing.disconnect()
    await out.wait("disconnect")
    assert events.names() == []  # registered all along: no re-registration
    # Between calls it moves: the stream reconnects there and registers again.
    alice.device.update_options(signaling_url=netfault.url)
    await events.wait("registered", timeout=10)
    assert alice.device.signaling_url == netfault.url
    assert alice.device.state is DeviceState.REGISTERED
    outgoing, _, out, _ = await place_and_answer(alice, bob)
    assert outgoing.codec == "opus"
    await hears(alice, 660)


async def test_rtc_configuration_on_connect_is_that_calls_own(make_phone):
    alice = await make_phone("alice")
    bob = await make_phone("bob", tone=660)
    servers = {"iceServers": [{"urls": "turn:127.0.0.1:3478", "username": "u",
                               "credential": "p"}]}
    outgoing = await alice.device.connect({"To": "bob"}, rtc_configuration={"iceServers": []})
    incoming = await bob.next_call()
    assert outgoing._media_settings.ice_servers == ()
    incoming.reject()
    await asyncio.wait_for(outgoing.wait_closed(), 5)
    alice.device.set_ice_servers([IceServer("stun:127.0.0.1:9")])
    call = await alice.device.connect({"To": "nobody"}, rtc_configuration=servers)
    assert call._media_settings.ice_servers == (IceServer("turn:127.0.0.1:3478", "u", "p"),)
    # the device's own are untouched: the next call without one uses them
    assert alice.device.media_settings.ice_servers == (IceServer("stun:127.0.0.1:9"),)
    await asyncio.wait_for(call.wait_closed(), 10)


async def invite(device, callsid: str) -> None:
    """An invite as a server that rings busy clients (Twilio does) would send it."""
    session = MediaSession(MediaSettings(ice_addresses=("127.0.0.1",)), source=Silence())
    try:
        sdp = await session.offer()
    finally:
        await session.close()
    device._stream.emit("frame", protocol.Frame("invite", {
        "callsid": callsid, "sdp": sdp,
        "parameters": {"From": "client:carol", "To": "client:bob"}}))


@pytest.mark.parametrize("allow", [False, True])
async def test_allow_incoming_while_busy(make_phone, allow):
    alice = await make_phone("alice")
    bob = await make_phone("bob", tone=660, allow_incoming_while_busy=allow)
    outgoing, incoming, out, inc = await place_and_answer(alice, bob)
    assert bob.device.is_busy
    await invite(bob.device, "CA" + "1" * 32)
    if allow:
        second = await bob.next_call()
        assert second.call_sid == "CA" + "1" * 32 and second.status() is CallStatus.PENDING
        second.ignore()
    else:
        await asyncio.sleep(0.5)  # time for an invite to become an incoming call
        assert bob.incoming.empty()
        assert bob.device.calls == [incoming]
    await hears(alice, 660)  # the call goes on either way
    assert incoming.status() is CallStatus.OPEN and inc.names() == ["accept"]


async def test_a_ringing_call_is_not_busy_so_another_invite_rings_too(make_phone):
    bob = await make_phone("bob", tone=660)  # allow_incoming_while_busy is False
    await invite(bob.device, "CA" + "2" * 32)
    first = await bob.next_call()
    assert not bob.device.is_busy
    await invite(bob.device, "CA" + "3" * 32)
    second = await bob.next_call()
    assert {first.call_sid, second.call_sid} == {"CA" + "2" * 32, "CA" + "3" * 32}
    first.ignore()
    second.ignore()


async def test_app_name_and_version_go_with_every_insights_event(make_phone):
    async with Gateway() as gateway:
        alice = await make_phone("alice", event_gateway=gateway.url, app_name="deskphone",
                                 app_version="2.1.0")
        bob = await make_phone("bob", tone=660)
        outgoing, _, _, _ = await place_and_answer(alice, bob)
        assert await asyncio.wait_for(outgoing.post_feedback(4), 10) is True
        alice.device.update_options(app_version="2.1.1", dscp=False)
        assert await asyncio.wait_for(outgoing.post_feedback(), 10) is True
    (_, first), (_, second) = gateway.requests
    assert first["publisher_metadata"] == {"app_name": "deskphone", "app_version": "2.1.0"}
    assert first["payload"]["dscp"] is True  # as the SDK's default payload
    assert second["publisher_metadata"] == {"app_name": "deskphone", "app_version": "2.1.1"}
    assert second["payload"]["dscp"] is False


async def test_max_average_bitrate_is_in_the_sdp_we_send(make_phone, wire):
    alice = await make_phone("alice", max_average_bitrate=12_000)
    bob = await make_phone("bob", tone=660, max_average_bitrate=0)  # 0: not used (the SDK)
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    (sent,) = wire.got("alice", "invite")
    assert "a=fmtp:96 maxaveragebitrate=12000" in sent["sdp"].split("\r\n")
    (answer,) = wire.got("bob", "answer")
    assert "maxaveragebitrate" not in answer["sdp"]
    await hears(alice, 660)


async def test_token_will_expire_fires_again_after_each_update_token(exchange):
    from piphone.voice import Device

    def token(ttl: float) -> str:
        return mint(identity="alice", ttl=ttl, **exchange.config.token_kwargs())

    # tokenWillExpire 12.5 s before a 14 s token expires: 0.5-1.5 s after each new token
    # (a JWT's exp is in whole seconds)
    device = Device(token(14), signaling_url=exchange.url, token_refresh_ms=12_500)
    events = Events(device, DEVICE_EVENTS)
    updated: list[float] = []

    def renew(d) -> None:
        updated.append(asyncio.get_running_loop().time())
        if len(updated) < 3:
            d.update_token(token(14))

    device.on("tokenWillExpire", renew)
    try:
        await device.register()
        await events.wait("tokenWillExpire", count=3, timeout=8)
        gaps = [b - a for a, b in zip(updated, updated[1:], strict=False)]
        assert all(0.4 < gap < 2.5 for gap in gaps), gaps
        assert device.state is DeviceState.REGISTERED
    finally:
        await device.destroy()
