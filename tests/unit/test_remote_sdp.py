"""The far end's SDP at the edge (voice/rtc/remote_sdp.py): what aiortc would choke on is refused
with a clear error, the default direction filled in, remote candidates filtered and capped."""

from __future__ import annotations

import logging

import pytest
from aiortc.sdp import SessionDescription

from piphone.exchange import config as exchange_config
from piphone.voice.rtc import remote_sdp
from piphone.voice.rtc.remote_sdp import SdpError, check

OFFER = """v=0
o=- 1 1 IN IP4 0.0.0.0
s=-
t=0 0
a=group:BUNDLE 0
a=msid-semantic:WMS *
m=audio 5000 UDP/TLS/RTP/SAVPF 111 0
c=IN IP4 127.0.0.1
a=sendrecv
a=mid:0
a=rtcp:9 IN IP4 0.0.0.0
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtpmap:0 PCMU/8000
a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host
a=end-of-candidates
a=ice-ufrag:abcd
a=ice-pwd:abcdefghijklmnopqrstuvwx
a=fingerprint:sha-256 AA:BB
a=setup:actpass
"""


def media_of(sdp: str):
    (media,) = SessionDescription.parse(sdp).media
    return media


def test_a_good_offer_passes_unchanged_but_for_line_ends():
    assert check(OFFER, "offer").splitlines() == OFFER.splitlines()


def test_an_offer_without_a_direction_line_is_sendrecv():
    assert media_of(check(OFFER.replace("a=sendrecv\n", ""), "offer")).direction == "sendrecv"


def test_a_session_level_direction_applies_to_a_section_without_one():
    sdp = OFFER.replace("a=sendrecv\n", "").replace("t=0 0\n", "t=0 0\na=sendonly\n")
    assert media_of(check(sdp, "offer")).direction == "sendonly"


@pytest.mark.parametrize("line", [
    "c=IN IP4 127.0.0.1:0", "c=IN IP4 not-an-address", "c=IN IP4", "c=IN IP9 127.0.0.1",
    "c=IN IP6 127.0.0.1", "c=IN IP4 224.2.1.1/127", "a=rtcp:9 IN IP4 0.0.0.0:1",
])
def test_a_connection_address_aiortc_cannot_write_out_is_refused(line):
    target = "a=rtcp:9 IN IP4 0.0.0.0" if line.startswith("a=rtcp") else "c=IN IP4 127.0.0.1"
    with pytest.raises(SdpError, match=r"(c=|a=rtcp)"):
        check(OFFER.replace(target, line), "offer")


def test_what_aiortc_cannot_parse_is_refused_and_the_message_is_bounded():
    with pytest.raises(SdpError, match="unreadable offer SDP") as info:
        check(OFFER.replace("111 0", "111 999"), "offer")
    assert len(str(info.value)) < 200
    with pytest.raises(SdpError, match="not text"):
        check(None, "offer")  # type: ignore[arg-type]
    with pytest.raises(SdpError, match="media sections"):
        check(OFFER + "m=audio 9 UDP/TLS/RTP/SAVPF 0\n" * remote_sdp.MAX_MEDIA_SECTIONS, "offer")


def test_unusable_candidates_are_dropped_with_one_log_line(caplog):
    bad = [
        "a=candidate:2 1 udp 1 0.0.0.0 5000 typ host",
        "a=candidate:3 1 udp 1 :: 5000 typ host",
        "a=candidate:4 1 udp 1 224.0.0.1 5000 typ host",
        "a=candidate:5 1 udp 1 ff02::1 5000 typ host",
        "a=candidate:6 1 udp 1 255.255.255.255 5000 typ host",
        "a=candidate:7 1 udp 1 127.0.0.1 0 typ host",
        "a=candidate:8 1 udp 1 127.0.0.1 70000 typ host",
        "a=candidate:9 1 sctp 1 127.0.0.1 5001 typ host",
        "a=candidate:10 1 tcp 1 127.0.0.1 5002 typ host tcptype passive",
        "a=candidate:11 2 udp 1 127.0.0.1 5003 typ host",
        "a=candidate:12 1 udp 1 127.0.0.1 5004 typ prflx",
        "a=candidate:13 1 udp 1 evil.example.com 5005 typ host",
        "a=candidate:14 1 udp",
        "a=candidate:15 1 udp x 127.0.0.1 5006 typ host",
    ]
    good = ["a=candidate:16 1 udp 1 127.0.0.2 5007 typ srflx raddr 0.0.0.0 rport 0",
            "a=candidate:17 1 udp 1 8f1e2a3b-1111-2222-3333-444455556666.local 5008 typ host"]
    sdp = OFFER.replace("a=end-of-candidates", "\n".join(bad + good + ["a=end-of-candidates"]))
    with caplog.at_level(logging.INFO, logger="piphone.voice.rtc.remote_sdp"):
        media = media_of(check(sdp, "offer"))
    assert [(c.ip, c.port) for c in media.ice_candidates] == [
        ("127.0.0.1", 5000), ("127.0.0.2", 5007),
        ("8f1e2a3b-1111-2222-3333-444455556666.local", 5008)]
    (record,) = caplog.records
    assert "kept 3 of 17 ICE candidates" in record.getMessage(), record.getMessage()
    assert "evil" not in record.getMessage()  # counts only: none of the far end's text


def test_candidates_beyond_the_limit_are_dropped_in_order(caplog):
    many = [f"a=candidate:{i} 1 udp 1 127.0.1.{i} 6000 typ host" for i in range(1, 41)]
    sdp = OFFER.replace("a=end-of-candidates", "\n".join(many + ["a=end-of-candidates"]))
    with caplog.at_level(logging.INFO, logger="piphone.voice.rtc.remote_sdp"):
        media = media_of(check(sdp, "answer", max_candidates=10))
    assert [c.ip for c in media.ice_candidates] == ["127.0.0.1"] + [
        f"127.0.1.{i}" for i in range(1, 10)]
    (record,) = caplog.records
    assert "kept 10 of 41" in record.getMessage() and "31 over the limit of 10" in (
        record.getMessage())


def test_the_exchange_default_is_the_media_default():
    assert exchange_config.MAX_REMOTE_CANDIDATES == remote_sdp.MAX_REMOTE_CANDIDATES
    assert exchange_config.ExchangeConfig("AC", "SK", "s").max_remote_candidates == 24
