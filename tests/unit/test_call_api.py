"""Call's argument checks and status rules, without a network."""

import pytest

from piphone.errors import InvalidArgumentError
from piphone.pcm import Silence
from piphone.voice.call import Call, CallDirection, CallStatus
from piphone.voice.errors import TwilioError
from piphone.voice.rtc import MediaSettings, codec_of
from piphone.voice.rtc import hooks as rtc_hooks
from piphone.voice.rtc.tracks import DrainSink


def incoming(sent, **parameters):
    return Call(direction=CallDirection.INCOMING, send=lambda t, p: sent.append((t, p)) or True,
                media_settings=MediaSettings(), source=Silence(), sink=DrainSink(),
                parameters={"CallSid": "CA1", **parameters})


async def test_digits_and_feedback_are_validated():
    call = incoming([])
    for bad in ("12a", "1 2", "٣", 12):
        with pytest.raises(InvalidArgumentError):
            call.send_digits(bad)
    with pytest.raises(TwilioError, match="while the call is pending"):
        call.send_digits("123")
    for score, issue in ((0, None), (6, None), (True, None), (3, "bad-vibes"), ("5", None)):
        with pytest.raises(InvalidArgumentError):
            call.post_feedback(score, issue)
    call.post_feedback()
    call.post_feedback(5)
    call.post_feedback(2, "dropped-call")


async def test_caller_info_from_stir_status():
    assert incoming([]).caller_info is None
    assert incoming([], StirStatus="TN-Validation-Passed-A").caller_info == {"is_verified": True}
    assert incoming([], StirStatus="TN-Validation-Passed-B").caller_info == {"is_verified": False}


async def test_mute_emits_only_on_change_and_ignore_sends_nothing():
    sent: list = []
    call = incoming(sent)
    events: list = []
    call.on("mute", lambda muted, c: events.append(muted))
    call.on("cancel", lambda: events.append("cancel"))
    call.mute()
    call.mute(True)
    call.mute(False)
    assert events == [True, False] and not call.is_muted()
    call.ignore()
    assert call.status() is CallStatus.CLOSED and events[-1] == "cancel"
    assert sent == []
    call.reject()  # not pending any more: a no-op
    assert sent == []
    assert call.direction == "INCOMING" and call.codec == ""


async def test_reject_sends_reject_once():
    sent: list = []
    call = incoming(sent)
    rejected = []
    call.on("reject", lambda: rejected.append(True))
    call.reject()
    call.reject()
    assert sent == [("reject", {"callsid": "CA1"})] and rejected == [True]


def test_media_settings_refuse_unknown_codecs():
    with pytest.raises(ValueError, match="codec_preferences"):
        MediaSettings(codec_preferences=("g729",))
    with pytest.raises(ValueError):
        MediaSettings(codec_preferences=())


def test_codec_of_answer_sdp():
    sdp = ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0 111\r\n"
           "c=IN IP4 0.0.0.0\r\na=mid:0\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:111 opus/48000/2\r\n")
    assert codec_of(sdp) == "pcmu"
    assert codec_of("garbage") is None


def test_rtc_hook_is_in_place_and_chooses_addresses():
    import aioice.ice

    rtc_hooks.check()  # fails loudly, naming the hook, if aioice changed
    with rtc_hooks.ice_addresses(["127.0.0.1", "::1"]):
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1", "::1"]
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
    with pytest.raises(ValueError), rtc_hooks.ice_addresses(["not-an-ip"]):
        pass


def test_audio_level_hook_matches_aiortc():
    import numpy as np

    from piphone.voice.rtc.frames import audio_frame

    rng = np.random.default_rng(7)
    for scale in (0, 1, 30, 1000, 32767):
        samples = (rng.standard_normal(960) * scale).clip(-32768, 32767).astype(np.int16)
        frame = audio_frame(samples, 0)
        assert rtc_hooks.audio_level(frame) == rtc_hooks._original_audio_level(frame)


async def test_decode_on_loop_hook_is_in_place_and_fails_by_name():
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    receiver = pc.addTransceiver("audio").receiver
    rtc_hooks.decode_on_loop(receiver)  # aiortc still has the private queue we replace
    with pytest.raises(rtc_hooks.HookMissing, match="__decoder_queue"):
        rtc_hooks.decode_on_loop(object())
    await pc.close()
