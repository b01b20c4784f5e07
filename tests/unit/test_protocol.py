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


# --- what a fuzzer found (issue 14): every failure is a ProtocolError -------------------------

DEEP = "[" * 1000 + "]" * 1000  # ~1,000 nested arrays in a 2 KB frame


@pytest.mark.parametrize("frames", [CLIENT_FRAMES, SERVER_FRAMES], ids=["client", "server"])
@pytest.mark.parametrize("text", [
    DEEP,
    "[" * 1000,
    '{"type": "register", "payload": {"media": ' + DEEP + "}}",
    '{"type": "message", "payload": {"callsid": "CA1", "content": ' + "{\"a\":" * 900
    + "1" + "}" * 900 + "}}",
], ids=["arrays", "unclosed", "in-a-field", "objects"])
def test_a_frame_nested_a_thousand_deep_is_a_protocol_error(text, frames):
    assert len(text) < 20_000
    with pytest.raises(ProtocolError, match="nests deeper than 32 levels"):
        decode(text, frames)


def test_nesting_within_the_bound_and_brackets_in_strings_are_fine():
    content = {"a": [[[{"b": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}]]]}
    parsed = decode(frame("message", callsid="CA1", content=content), CLIENT_FRAMES)
    assert parsed.payload["content"] == content
    nested: object = 1
    for _ in range(protocol.MAX_DEPTH - 3):  # the frame and its payload are two levels
        nested = [nested]
    decode(frame("message", callsid="CA1", content=nested), CLIENT_FRAMES)


@pytest.mark.parametrize("params", [5, ["To=bob"], {"To": "bob"}, True])
def test_an_invite_whose_twilio_params_is_not_a_string_is_refused(params):
    text = frame("invite", callsid="TJS1", sdp="v=0", twilio={"params": params})
    with pytest.raises(ProtocolError, match="invite.twilio: field 'params' must be a string"):
        decode(text, CLIENT_FRAMES)
    with pytest.raises(ProtocolError, match="'twilio' must be an object"):
        decode(frame("invite", callsid="TJS1", sdp="v=0", twilio="To=bob"), CLIENT_FRAMES)


@pytest.mark.parametrize("text", [
    '{"type": "listen", "payload": {"token": "eyJ\\ud800.x.y"}}',
    '{"type": "invite", "payload": {"callsid": "TJS\\ud800", "sdp": "v=0"}}',
    '{"type": "invite", "payload": {"callsid": "TJS1", "sdp": "v=0\\udfff"}}',
    '{"type": "message", "payload": {"callsid": "CA1", "content": {"\\udc00": 1}}}',
    '{"type": "hangup", "payload": {"callsid": "CA1", "message": "\\ude00\\ud83d"}}',
], ids=["token", "callsid", "sdp", "key", "reversed-pair"])
def test_a_lone_surrogate_anywhere_is_a_protocol_error(text):
    with pytest.raises(ProtocolError, match="not valid Unicode"):
        decode(text, CLIENT_FRAMES)


def test_a_raw_lone_surrogate_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="not valid Unicode"):
        decode(frame("hangup", callsid="CA1", message="\ud800"), CLIENT_FRAMES)


def test_paired_surrogates_and_an_escaped_backslash_are_text():
    emoji = decode('{"type": "hangup", "payload": {"callsid": "CA1", "message": '
                   '"\\ud83d\\ude00"}}', CLIENT_FRAMES)
    assert emoji.payload["message"] == "\U0001f600"
    literal = decode('{"type": "hangup", "payload": {"callsid": "CA1", "message": '
                     '"\\\\ud800"}}', CLIENT_FRAMES)
    assert literal.payload["message"] == "\\ud800"


@pytest.mark.parametrize("callsid", ["", "TJS 1", "CA1\n", "CA\u00e91", "T" * 65, "\x00"])
@pytest.mark.parametrize("type_", ["invite", "hangup", "answer"])
def test_a_callsid_that_is_not_printable_ascii_is_refused(callsid, type_):
    with pytest.raises(ProtocolError, match="callsid"):
        decode(frame(type_, callsid=callsid, sdp="v=0"), CLIENT_FRAMES)


def test_callsids_of_the_sdk_and_the_exchange_pass():
    for callsid in ("TJS2f1e3c4d-5b6a-4789-8abc-def012345678", "CA" + "0123456789abcdef" * 2):
        decode(frame("hangup", callsid=callsid), CLIENT_FRAMES)
        decode(frame("cancel", callsid=callsid), SERVER_FRAMES)


def test_a_listen_token_is_printable_ascii_and_bounded():
    with pytest.raises(ProtocolError, match="token"):
        decode(frame("listen", token="eyJ é"), CLIENT_FRAMES)
    with pytest.raises(ProtocolError, match="over 16384 characters"):
        decode(frame("listen", token="e" * 16385), CLIENT_FRAMES)


def test_register_media_audio_is_a_boolean():
    with pytest.raises(ProtocolError, match="register.media: field 'audio'"):
        decode(frame("register", media={"audio": "false"}), CLIENT_FRAMES)


def test_error_messages_quote_the_sender_escaped_and_bounded():
    with pytest.raises(ProtocolError) as raised:
        decode(json.dumps({"type": "eve\nWATCHDOG=trigger" + "x" * 60_000}), CLIENT_FRAMES)
    message = str(raised.value)
    assert "\n" not in message and len(message) < 200
    assert "eve\\nWATCHDOG=trigger" in message and "(+" in message
    with pytest.raises(ProtocolError) as raised:
        decode(frame("hangup", callsid="CA\x1b[2J" + "y" * 5000), CLIENT_FRAMES)
    assert "\x1b" not in str(raised.value) and len(str(raised.value)) < 200


def test_decode_raises_nothing_but_protocol_errors_on_junk():
    junk = ["", " \n", "[", "]", "{", '"', "\\", "\x00", "nul", "1e999999", "-",
            '{"type": "listen", "payload": {"token": "a", "browserinfo": []}}',
            '{"type": "invite", "payload": {"callsid": "TJS1", "sdp": "v", "twilio": '
            '{"params": null}}}', "\ud800", "[" * 33 + "]" * 33, '{"a":' * 40]
    for text in junk:
        try:
            decode(text, CLIENT_FRAMES)
        except ProtocolError:
            pass
