import json

import pytest

from piphone.voice import protocol
from piphone.voice.protocol import CLIENT_FRAMES, SERVER_FRAMES, ProtocolError, decode


def frame(type_, **payload):
    return json.dumps({"type": type_, "version": "1.6", "payload": payload})


def test_round_trip_and_heartbeat():
    text = protocol.encode("invite", callsid="TJS1", sdp="v=0", twilio={"params": "To=bob"})
    parsed = decode(text, CLIENT_FRAMES)
    assert parsed.type == "invite" and parsed.payload["twilio"] == {"params": "To=bob"}
    assert json.loads(text)["version"] == "1.6"
    assert decode("\n", SERVER_FRAMES) is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("{nope", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"payload": {}}), "no string 'type'"),
        (frame("teleport"), "unknown frame type 'teleport'"),
        (json.dumps({"type": "answer", "payload": []}), "'payload' is not an object"),
        (frame("answer", callsid="CA1"), "missing field 'sdp'"),
        (frame("answer", callsid=7, sdp="v=0"), "field 'callsid' must be a string, not int"),
        (frame("register", media=True), "field 'media' must be an object, not bool"),
        (frame("listen", token="t", reconnectTimeout=True), "must be a number, not bool"),
    ],
)
def test_malformed_frames_are_named(text, message):
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode(text, CLIENT_FRAMES)


def test_oversized_and_binary_frames():
    big = frame("dtmf", callsid="CA1", dtmf="1" * (protocol.MAX_FRAME_BYTES + 1))
    with pytest.raises(ProtocolError, match="over the 65536 limit"):
        decode(big, CLIENT_FRAMES)
    with pytest.raises(ProtocolError, match="binary"):
        decode(b"\x00", CLIENT_FRAMES)


def test_a_client_frame_is_not_a_server_frame():
    with pytest.raises(ProtocolError, match="unknown frame type 'listen'"):
        decode(frame("listen", token="x"), SERVER_FRAMES)


def test_params_encoding_round_trips():
    params = {"To": "client:bob", "topic": "lunch & dinner", "empty": ""}
    assert protocol.decode_params(protocol.encode_params(params)) == params
    assert protocol.decode_params(None) == {}
