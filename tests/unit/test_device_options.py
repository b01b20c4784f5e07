"""Device options without a network: DeviceOptions' checks, the rule of update_options, the
Opus maxaveragebitrate edit (as the SDK's setMaxAverageBitrate), DSCP marks that reach the
wire, and tokenWillExpire re-armed by a new token on its own."""

from __future__ import annotations

import asyncio
import socket

import pytest

from piphone.errors import InvalidArgumentError, InvalidStateError
from piphone.voice import Device
from piphone.voice.device_options import DeviceOptions, check_update
from piphone.voice.rtc import dscp
from piphone.voice.rtc.opus_fmtp import max_average_bitrate_of, with_max_average_bitrate
from piphone.voice.token_refresh import TokenRefresher
from piphone.voice.tokens import mint

CREDS = {"account_sid": "AC" + "0" * 32, "api_key_sid": "SK" + "0" * 32,
         "api_key_secret": "s" * 32}
CHROME = ("m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\n"
          "a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\n")
AIORTC = "m=audio 9 UDP/TLS/RTP/SAVPF 96 0\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"


def test_unknown_or_bad_options_are_refused_by_name():
    with pytest.raises(InvalidArgumentError, match="codeec_preferences"):
        Device(mint(identity="a", **CREDS), codeec_preferences=("opus",))
    with pytest.raises(ValueError, match="unknown edge"):
        DeviceOptions(edge="atlantis")
    with pytest.raises(ValueError, match="codec_preferences"):
        DeviceOptions(codec_preferences=("g729",))
    with pytest.raises(InvalidArgumentError, match="max_average_bitrate"):
        DeviceOptions(max_average_bitrate="16000")
    options = DeviceOptions()
    assert options.dscp is True  # on by default, as the SDK's
    assert options.media_settings().dscp and options.media_settings().max_average_bitrate is None
    assert options.metadata == {"app_name": None, "app_version": None}


def test_only_the_signaling_url_is_refused_during_an_active_call():
    old = DeviceOptions(signaling_url="ws://127.0.0.1:1/signal")
    assert check_update(old, old.changed({"codec_preferences": ("pcmu",), "dscp": False}),
                        busy=True) is False
    moved = old.changed({"signaling_url": "ws://127.0.0.1:2/signal"})
    with pytest.raises(InvalidStateError, match="Cannot change Edge while on an active Call"):
        check_update(old, moved, busy=True)
    assert check_update(old, moved, busy=False) is True
    with pytest.raises(InvalidStateError):
        check_update(DeviceOptions(edge="dublin"), DeviceOptions(edge="tokyo"), busy=True)


def test_max_average_bitrate_goes_on_the_opus_fmtp_line_as_the_sdk_puts_it():
    assert with_max_average_bitrate(CHROME, 16_000).split("\r\n")[2] == (
        "a=fmtp:111 minptime=10;useinbandfec=1;maxaveragebitrate=16000")
    lines = with_max_average_bitrate(AIORTC, 16_000).split("\r\n")  # aiortc writes no fmtp
    assert lines[1:3] == ["a=rtpmap:96 opus/48000/2", "a=fmtp:96 maxaveragebitrate=16000"]
    again = with_max_average_bitrate(with_max_average_bitrate(CHROME, 16_000), 20_000)
    assert again.count("maxaveragebitrate") == 1 and "=20000" in again
    for unused in (None, 0, 5_999, 510_001):  # the SDK ignores these
        assert with_max_average_bitrate(CHROME, unused) == CHROME
    assert with_max_average_bitrate("m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
                                    16_000).count("maxaveragebitrate") == 0
    assert max_average_bitrate_of(with_max_average_bitrate(AIORTC, 9_000)) == 9_000
    assert max_average_bitrate_of(CHROME) is None
    assert max_average_bitrate_of(CHROME.replace("useinbandfec=1",
                                                 "maxaveragebitrate=999999")) is None


def test_a_dscp_mark_reaches_the_wire():
    """IP_TOS 0xB8 on the socket is what the receiver reads off the packet (IP_RECVTOS)."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
    receiver.settimeout(2)
    try:
        for marked in (False, True):
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                if marked:
                    assert dscp.mark(sender)
                assert dscp.traffic_class(sender) == (0xB8 if marked else 0)
                sender.sendto(b"rtp", receiver.getsockname())
                data, ancillary, _, _ = receiver.recvmsg(64, socket.CMSG_SPACE(1))
            finally:
                sender.close()
            tos = [d[0] for level, kind, d in ancillary
                   if level == socket.IPPROTO_IP and kind == socket.IP_TOS]
            assert data == b"rtp" and tos == [0xB8 if marked else 0]
            assert (tos[0] >> 2) == (46 if marked else 0)  # DSCP EF
    finally:
        receiver.close()


async def test_a_new_token_rearms_token_will_expire_by_itself():
    """tokenWillExpire again for each new token, even if the server never answers the new
    listen (a stream that is down): the token's own exp arms it."""
    current = [mint(identity="a", ttl=600, **CREDS)]
    asked: list[float] = []
    loop = asyncio.get_running_loop()
    refresher = TokenRefresher(token=lambda: current[0], update=lambda t: None,
                               ask=lambda: asked.append(loop.time()) or True,
                               report=lambda e: None, source=None, margin=598.5)
    refresher.connected(600)  # due in 1.5 s
    for _ in range(2):  # twice in a row, with no connected in between
        current[0] = mint(identity="a", ttl=600, **CREDS)
        started = loop.time()
        refresher.token_changed()
        count = len(asked)
        async with asyncio.timeout(4):
            while len(asked) == count:
                await asyncio.sleep(0.02)
        assert 0.4 < asked[-1] - started < 2.6
    refresher.cancel()
    assert len(asked) == 2  # the first token's timer was replaced, never fired
