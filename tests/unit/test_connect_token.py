"""Connect tokens (voice/connect_token.py): the SDK's format byte for byte, strict decoding,
the secret kept out of reprs and errors; Device.connect refuses a bad one before any network;
the exchange tells a resume's new offer from the SDP a leg already has."""

from __future__ import annotations

import asyncio

import pytest

from piphone.errors import InvalidArgumentError
from piphone.exchange.restarts import _session_of
from piphone.voice import Device
from piphone.voice import connect_token as ct
from piphone.voice.call import Call, CallDirection
from piphone.voice.rtc import MediaSettings
from piphone.voice.tokens import mint

# Made by Twilio's SDK's own expression in node (call.ts, get connectToken):
#   btoa(encodeURIComponent(JSON.stringify({customParameters, parameters,
#                                           signalingReconnectToken})))
SDK_TOKEN = (
    "JTdCJTIyY3VzdG9tUGFyYW1ldGVycyUyMiUzQSU3QiUyMlRvJTIyJTNBJTIyY2xpZW50JTNBYm9iJTIyJTJDJTIy"
    "bm90ZSUyMiUzQSUyMmNhZiVDMyVBOSUyMCUyNiUyMHRlYSUyMiU3RCUyQyUyMnBhcmFtZXRlcnMlMjIlM0ElN0Il"
    "MjJDYWxsU2lkJTIyJTNBJTIyQ0EwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZiUyMiU3RCUyQyUyMnNp"
    "Z25hbGluZ1JlY29ubmVjdFRva2VuJTIyJTNBJTIydG9rLTEyM19hYmMlMjIlN0Q=")
CUSTOM = {"To": "client:bob", "note": "café & tea"}
PARAMETERS = {"CallSid": "CA0123456789abcdef0123456789abcdef"}


def test_the_sdk_token_decodes_and_ours_is_the_same_bytes():
    token = ct.decode(SDK_TOKEN)
    assert token.parameters == PARAMETERS and token.custom_parameters == CUSTOM
    assert token.signaling_reconnect_token == "tok-123_abc"
    assert token.call_sid == PARAMETERS["CallSid"]
    assert ct.encode(PARAMETERS, CUSTOM, "tok-123_abc") == SDK_TOKEN


def test_no_token_until_the_call_has_a_callsid_and_a_reconnect_token():
    assert ct.encode({}, CUSTOM, "tok") is None
    assert ct.encode(PARAMETERS, CUSTOM, None) is None
    assert ct.encode(PARAMETERS, {}, "") is None


@pytest.mark.parametrize("bad", [
    None, 42, "", "not base64!", "%%%%", "a" * (ct.MAX_LENGTH + 4),
    ct.encode(PARAMETERS, {}, "x")[:-3],  # type: ignore[index]  # truncated
    "WzEsMl0=",  # base64 of "[1,2]": JSON, not an object
    "JUZG",  # base64 of "%FF": not UTF-8 once unquoted
])
def test_what_cannot_be_parsed(bad):
    with pytest.raises(InvalidArgumentError, match="^Cannot parse connectToken$"):
        ct.decode(bad)


def _raw(obj: object) -> str:
    import base64
    import json
    from urllib.parse import quote
    return base64.b64encode(quote(json.dumps(obj)).encode()).decode()


@pytest.mark.parametrize("parts", [
    {"parameters": {}, "signalingReconnectToken": "t"},  # no CallSid
    {"parameters": {"CallSid": "CA1"}},  # no reconnect token
    {"parameters": {"CallSid": "CA1"}, "signalingReconnectToken": 5},
    {"parameters": {"CallSid": 7}, "signalingReconnectToken": "t"},
    {"parameters": {"CallSid": "CA1", "x": {"nested": 1}}, "signalingReconnectToken": "t"},
    {"parameters": {"CallSid": "CA1"}, "customParameters": [1], "signalingReconnectToken": "t"},
    {"parameters": "CA1", "signalingReconnectToken": "t"},
])
def test_what_is_not_a_valid_token(parts):
    with pytest.raises(InvalidArgumentError, match="^Invalid connectToken$"):
        ct.decode(_raw(parts))


def test_the_secret_stays_out_of_reprs_and_errors():
    token = ct.decode(SDK_TOKEN)
    assert "tok-123_abc" not in repr(token)
    secret = "s3cret-reconnect-token"
    broken = _raw({"parameters": {}, "signalingReconnectToken": secret})
    with pytest.raises(InvalidArgumentError) as raised:
        ct.decode(broken)
    assert secret not in str(raised.value) and broken not in str(raised.value)


def test_a_call_gives_its_token_once_it_can_be_resumed():
    call = Call(direction=CallDirection.INCOMING, send=lambda *a, **k: True,
                media_settings=MediaSettings(), source=None, sink=None,  # type: ignore[arg-type]
                parameters=PARAMETERS, custom_parameters=CUSTOM, reconnect_token="tok-123_abc")
    assert call.connect_token == SDK_TOKEN
    assert "tok-123_abc" not in repr(call)
    outgoing = Call(direction=CallDirection.OUTGOING, send=lambda *a, **k: True,
                    media_settings=MediaSettings(), source=None, sink=None,  # type: ignore[arg-type]
                    custom_parameters=CUSTOM)
    assert outgoing.connect_token is None  # no CallSid nor token before the answer


def test_the_resume_invite_is_the_sdks():
    assert ct.invite("CA1", "v=0", "", "tok") == {
        "callsid": "CA1", "sdp": "v=0", "reconnect": "tok", "preflight": False, "twilio": {}}
    assert ct.invite("TJS1", "v=0", "To=bob", None) == {
        "callsid": "TJS1", "sdp": "v=0", "twilio": {"params": "To=bob"}}


async def test_device_connect_refuses_a_bad_token_before_any_network():
    token = mint(identity="alice", ttl=60, account_sid="AC" + "0" * 32,
                 api_key_sid="SK" + "0" * 32, api_key_secret="s" * 32)
    # Nothing listens there: a token that got as far as the network would time out instead.
    device = Device(token, signaling_url="ws://127.0.0.1:9/signal")
    try:
        with pytest.raises(InvalidArgumentError, match="Cannot parse connectToken"):
            await asyncio.wait_for(device.connect(connect_token="garbage", timeout=5), 1)
        with pytest.raises(InvalidArgumentError, match="Invalid connectToken"):
            await device.connect(connect_token=_raw({"parameters": {}}), timeout=5)
        assert device.calls == []
    finally:
        await device.destroy()


OLD = ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
       "a=ice-ufrag:ab12\r\na=ice-pwd:x\r\na=fingerprint:sha-256 AA:BB\r\n"
       "a=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n")


def test_the_exchange_tells_a_new_peer_connection_by_ufrag_or_fingerprint():
    more_candidates = OLD + "a=candidate:2 1 udp 1 127.0.0.1 5001 typ host\r\n"
    assert _session_of(more_candidates) == _session_of(OLD)  # the same session, resumed
    assert _session_of(OLD.replace("ab12", "cd34")) != _session_of(OLD)
    assert _session_of(OLD.replace("AA:BB", "CC:DD")) != _session_of(OLD)
    assert _session_of("") != _session_of(OLD)
