"""Every row of a call's state table (voice/call_states.py), through a real Call with fake
ports (tests/unit/call_rig.py) on a virtual clock: what it sends, which events it emits in
which order, and when (reconnection's timers, watchdog, backoff and give-ups).

Each test names the rows it covers (``covers``) and fails if one of them was not taken;
``test_every_row_of_the_table_has_a_test`` fails when a row has no test.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from piphone.voice import call_states
from piphone.voice.call import CallDirection, CallStatus
from piphone.voice.call_states import Facts, Row
from piphone.voice.errors import TwilioError
from piphone.voice.rtc import IceServer

from ..virtual_clock import virtual_clock
from .call_rig import CALLSID, make_call, open_incoming, place, settle

IN, OUT = CallDirection.INCOMING, CallDirection.OUTGOING


def key(row: Row, source: CallStatus) -> str:
    when = f" if {' '.join(row.when)}" if row.when else ""
    return f"{row.event} from {source}{when}"


ALL_CELLS = {key(row, source) for row, source in call_states.cells()}
CLAIMED: set[str] = set()


def covers(*keys: str) -> Callable[[Callable[[], Coroutine[Any, Any, None]]], Any]:
    """The test takes these rows (checked while it runs); it runs on the virtual clock."""
    unknown = [k for k in keys if k not in ALL_CELLS]
    assert not unknown, f"no such row: {unknown}"
    CLAIMED.update(keys)

    def decorate(test: Callable[[], Coroutine[Any, Any, None]]) -> Any:
        async def checked() -> None:
            taken: set[str] = set()
            real = call_states.find

            def spy(status: CallStatus, event: call_states.CallEvent, facts: Facts) -> Row | None:
                row = real(status, event, facts)
                if row is not None:
                    taken.add(key(row, status))
                return row

            call_states.find = spy
            try:
                await test()
            finally:
                call_states.find = real
            missing = set(keys) - taken
            assert not missing, f"rows claimed but not taken: {sorted(missing)}"

        checked.__name__, checked.__qualname__ = test.__name__, test.__qualname__
        return virtual_clock(checked)

    return decorate


# --- an incoming call rings here --------------------------------------------------------------
@covers("accept from pending", "answer from connecting if !answered",
        "media-connected from connecting", "hangup from open")
async def test_incoming_accepted_then_hung_up():
    call, rig, log = make_call(IN)
    await call.prepare_incoming()
    await call.accept()
    assert call.status() is CallStatus.OPEN and call.codec == "pcmu"
    assert log.names() == ["status:connecting", "status:open", "accept"]
    assert log.entries[-1][1] == (call,)
    assert rig.kinds() == ["answer"] and rig.sent[0][1]["callsid"] == CALLSID
    assert call.accept() is None  # not pending any more: a no-op
    call.disconnect()
    assert log.names()[3:] == ["status:closed", "disconnect"]
    assert rig.kinds() == ["answer", "hangup"] and rig.of_kind("hangup") == [{"callsid": CALLSID}]
    await call.wait_closed()
    assert rig.sessions[0].closed


@covers("accept from pending", "media-connected from connecting")
async def test_accept_with_an_rtc_configuration_gathers_again_with_its_ice_servers():
    """The SDK's accept(rtcConfiguration): the session prepared while it rang is closed, a new
    one is made with the configuration's ICE servers (either spelling), the call opens."""
    for spelling in ("iceServers", "ice_servers"):
        call, rig, log = make_call(IN)
        await call.prepare_incoming()
        await call.accept(rtc_configuration={spelling: [{"urls": "stun:127.0.0.1:3478"}]})
        assert call.status() is CallStatus.OPEN and len(rig.sessions) == 2
        assert rig.sessions[0].closed and not rig.sessions[1].closed
        assert rig.sessions[1].settings is not None
        assert rig.sessions[1].settings.ice_servers == (IceServer("stun:127.0.0.1:3478"),)
        call.disconnect()
    plain, rig, log = make_call(IN)  # none named: the session gathered while it rang is used
    await plain.prepare_incoming()
    await plain.accept(rtc_configuration={"sdpSemantics": "unified-plan"})
    assert plain.status() is CallStatus.OPEN and len(rig.sessions) == 1
    plain.disconnect()


@covers("reject from pending", "ignore from pending", "cancel from pending",
        "remote-hangup from pending")
async def test_an_incoming_call_ends_before_anyone_answers():
    rejected, rig, log = make_call(IN)
    rejected.reject()
    rejected.reject()  # once
    assert log.names() == ["status:closed", "reject"] and rig.kinds() == ["reject"]
    ignored, rig, log = make_call(IN)
    ignored.ignore()
    assert log.names() == ["status:closed", "cancel"] and rig.sent == []  # the caller is not told
    cancelled, rig, log = make_call(IN)
    rig.frame("cancel", {"callsid": CALLSID})
    assert log.names() == ["status:closed", "cancel"] and rig.sent == []
    hung_up, rig, log = make_call(IN)
    rig.frame("hangup", {"callsid": CALLSID, "error": {"code": 31005, "message": "gone"}})
    assert log.names() == ["error", "status:closed", "cancel"] and log.codes("error") == [31005]


# --- an outgoing call ----------------------------------------------------------------------------
@covers("ringing from connecting", "ringing from ringing", "answer from ringing if !answered",
        "media-connected from ringing", "remote-hangup from open")
async def test_outgoing_rings_is_answered_and_the_far_end_hangs_up():
    call, rig, log = make_call(OUT)
    await call.start_outgoing("")
    (invite,) = rig.of_kind("invite")
    assert invite["callsid"] == call.outbound_connection_id and invite["sdp"].startswith("v=0")
    rig.frame("ringing", {"callsid": CALLSID})
    rig.frame("ringing", {"callsid": CALLSID, "sdp": "v=0 early"})  # again, with early media
    assert call.call_sid == CALLSID and call.status() is CallStatus.RINGING
    rig.frame("answer", {"callsid": CALLSID, "sdp": "v=0 answer", "reconnect": "tok1"})
    await settle()
    assert call.status() is CallStatus.OPEN and call.codec == "opus"
    assert log.names() == ["status:ringing", "ringing", "ringing", "status:open", "accept"]
    assert [args for name, args in log.entries if name == "ringing"] == [(False,), (True,)]
    rig.frame("hangup", {"callsid": CALLSID})
    assert log.names()[5:] == ["status:closed", "disconnect"]
    assert rig.kinds() == ["invite"]  # nothing back for the far end's hangup


@covers("answer from connecting if !answered", "media-connected from connecting",
        "hangup from connecting if outgoing !answered", "hangup from ringing if outgoing !answered")
async def test_outgoing_answered_without_ringing_and_hung_up_before_answer():
    call, rig, log = await place(ring=False)
    assert log.names() == ["status:open", "accept"]
    early, rig, log = await place(answer=False, ring=False)
    early.disconnect()  # placed, not answered: the SDK's cancel
    assert log.names() == ["status:closed", "cancel"] and rig.kinds() == ["invite", "hangup"]
    ringing, rig, log = await place(answer=False)
    ringing.disconnect()
    assert log.names() == ["status:ringing", "ringing", "status:closed", "cancel"]
    assert rig.kinds() == ["invite", "hangup"]


@covers("hangup from connecting", "hangup from ringing", "remote-hangup from connecting",
        "remote-hangup from ringing")
async def test_hung_up_while_the_media_connects():
    call, rig, log = make_call(IN)
    rig.media_up.clear()
    await call.prepare_incoming()
    call.accept()
    await settle()
    assert call.status() is CallStatus.CONNECTING and rig.kinds() == ["answer"]
    call.disconnect()  # accepted: a disconnect, not a cancel
    assert log.names() == ["status:connecting", "status:closed", "disconnect"]
    outgoing, rig, log = await place(answer=False)
    rig.media_up.clear()
    rig.frame("answer", {"callsid": CALLSID, "sdp": "v=0 answer"})
    await settle()
    outgoing.disconnect()  # answered while it rang, media on its way
    assert log.since(2) == ["status:closed", "disconnect"]
    for ring in (False, True):
        far, rig, log = await place(ring=ring, answer=False)
        rig.frame("hangup", {"callsid": CALLSID})
        assert log.names()[-2:] == ["status:closed", "disconnect"] and rig.kinds() == ["invite"]


# --- media lost mid-call -------------------------------------------------------------------------
@covers("media-lost from open if !media_lost", "media-back from reconnecting if media_lost")
async def test_media_lost_mid_call_and_back():
    call, rig, log = await open_incoming()
    log.clear()
    first = rig.sessions[0]
    lost_at = _now()
    rig.media_up.clear()
    await settle(2.9)
    assert log.names() == []  # no RTP for 2.9 s: not yet (rtp_timeout 3 s)
    await settle(0.2)
    assert log.names() == ["status:reconnecting", "reconnecting"]
    assert log.codes("reconnecting") == [53405] and 3.0 <= log.when("reconnecting") - lost_at < 3.2
    assert first.closed  # the lost session is closed at once
    await settle(2.0)  # attempts: a reinvite each, answered, then no media for 0.7 s
    attempts = rig.of_kind("reinvite")
    assert len(attempts) >= 2 and all(not retry for t, _, retry in rig.sent if t == "reinvite")
    assert all(s.closed for s in rig.sessions[:-1])  # failed attempts leave nothing open
    back_at = _now()
    rig.media_up.set()
    await settle(1.0)
    assert log.since(2) == ["status:open", "reconnected"]
    assert log.when("reconnected") - back_at < 0.6  # the next attempt, after a short backoff
    current = rig.sessions[-1]
    assert not current.closed and current.answer_sdp == "v=0 reinvite answer"
    rig.media_up.clear()  # the new session is watched too
    await settle(3.2)
    assert log.since(4) == ["status:reconnecting", "reconnecting"]
    call.disconnect()


@covers("media-lost from open if !media_lost")
async def test_ice_failed_is_media_lost_at_once():
    call, rig, log = await open_incoming()
    log.clear()
    rig.sessions[0].on_state("failed")
    assert log.names() == ["status:reconnecting", "reconnecting"]
    rig.sessions[0].on_state("failed")  # lost already: nothing more
    assert log.names() == ["status:reconnecting", "reconnecting"]
    call.disconnect()


@covers("media-gave-up from reconnecting if media_lost")
async def test_media_not_back_within_give_up_ends_the_call():
    call, rig, log = await open_incoming(give_up=30.0)
    log.clear()
    rig.media_up.clear()
    await settle(3.1)
    start = _now()
    await settle(31.0)
    assert log.since(2) == ["error", "status:closed", "disconnect"]
    assert log.codes("error") == [53405] and 29.9 <= log.when("error") - start <= 30.1
    (hangup,) = rig.of_kind("hangup")
    assert "not restored within 30 s" in hangup["message"]
    # attempts of 0.7 s with pauses of at most 0.6 s (0.5 +- 20%): about 25 in 30 s
    assert 20 <= len(rig.of_kind("reinvite")) <= 45
    await call.wait_closed()
    assert all(s.closed for s in rig.sessions)


@covers("media-lost from open if !media_lost")
async def test_an_attempt_whose_ice_is_through_gets_the_dtls_grace():
    call, rig, log = await open_incoming(attempt_timeout=0.7, dtls_grace=0.5)
    log.clear()
    rig.media_up.clear()
    await settle(3.1)
    rig.dtls_delay = 0.9  # longer than an attempt, shorter than attempt + grace
    rig.media_up.set()
    await settle(1.5)
    assert log.since(2) == ["status:open", "reconnected"]
    assert len(rig.of_kind("reinvite")) == 1  # the first attempt made it, in its grace
    call.disconnect()


@covers("hangup from reconnecting")
async def test_hangup_while_media_reconnects_stops_the_attempts():
    call, rig, log = await open_incoming()
    rig.media_up.clear()
    await settle(3.5)
    assert call.status() is CallStatus.RECONNECTING
    log.clear()
    call.disconnect()
    assert log.names() == ["status:closed", "disconnect"] and rig.kinds()[-1] == "hangup"
    sessions = len(rig.sessions)
    await settle(10)
    assert len(rig.sessions) == sessions and all(s.closed for s in rig.sessions)


# --- signaling lost mid-call ---------------------------------------------------------------------
@covers("signaling-lost from open if resumable",
        "signaling-back from reconnecting if signaling_lost")
async def test_signaling_lost_and_resumed_with_the_newest_token():
    call, rig, log = await open_incoming(token="tok1")
    log.clear()
    rig.cut_signaling()
    assert log.names() == ["status:reconnecting", "reconnecting"]
    assert log.codes("reconnecting") == [53001]
    await settle(5)
    assert rig.queued == [] and call.status() is CallStatus.RECONNECTING  # media flows on
    rig.restore_signaling()
    (resume,) = rig.of_kind("invite")
    assert resume == {"callsid": CALLSID, "sdp": "v=0 answer", "reconnect": "tok1",
                      "preflight": False, "twilio": {}}
    assert rig.sent[-1][2] is False  # a stale resume must not go out on a later socket
    await settle()
    assert log.since(2) == ["status:open", "reconnected"]
    rig.cut_signaling()  # again: the answer's token is the one to resume with now
    rig.restore_signaling()
    assert rig.of_kind("invite")[-1]["reconnect"] == "tok2"
    await settle()
    assert call.status() is CallStatus.OPEN
    call.disconnect()


@covers("signaling-lost from connecting if resumable", "media-connected from reconnecting")
async def test_signaling_lost_after_our_answer_before_media():
    call, rig, log = make_call(IN)
    rig.media_up.clear()
    await call.prepare_incoming()
    call.accept()
    await settle()
    rig.cut_signaling()  # answered: the exchange keeps the call for its grace
    rig.media_up.set()
    await settle()
    assert log.names() == ["status:connecting", "status:reconnecting", "reconnecting", "accept"]
    assert call.status() is CallStatus.RECONNECTING
    rig.restore_signaling()
    await settle()
    assert log.since(4) == ["status:open", "reconnected"]
    call.disconnect()


@covers("signaling-gave-up from reconnecting if signaling_lost")
async def test_signaling_not_back_within_its_give_up_ends_the_call():
    call, rig, log = await open_incoming(signaling_give_up=35.0)
    log.clear()
    rig.cut_signaling()
    await settle(34.9)
    assert call.status() is CallStatus.RECONNECTING
    await settle(0.2)
    assert log.names() == ["status:reconnecting", "reconnecting", "error", "status:closed",
                           "disconnect"]
    assert log.codes("error") == [53001]
    assert [t for t, _ in rig.queued] == ["hangup"]  # goes out if the stream comes back


@covers("token-refused from reconnecting if signaling_lost")
async def test_a_refused_token_ends_the_call_waiting_to_resume():
    call, rig, log = await open_incoming()
    rig.cut_signaling()
    rig.signaling_up = True  # the stream is back, but our token is refused there
    call.token_refused(TwilioError(20104, "access token expired"))
    assert log.since(5) == ["error", "status:closed", "disconnect"]
    assert log.codes("error") == [20104]
    assert "hangup" not in rig.kinds() and rig.queued == []  # the stream is not authenticated
    open_call, rig, log = await open_incoming()
    open_call.token_refused(TwilioError(20104))  # not waiting to resume: nothing to do
    assert open_call.status() is CallStatus.OPEN


# --- both lost ------------------------------------------------------------------------------------
@covers("media-lost from reconnecting if !media_lost",
        "signaling-back from reconnecting if signaling_lost media_lost",
        "media-back from reconnecting if media_lost")
async def test_signaling_and_media_lost_together():
    call, rig, log = await open_incoming()
    log.clear()
    rig.cut_signaling()
    rig.media_up.clear()
    await settle(3.2)  # the media loss shows 3 s later
    assert log.names() == ["status:reconnecting", "reconnecting", "reconnecting"]
    assert log.codes("reconnecting") == [53001, 53405]
    await settle(5)
    assert "reinvite" not in rig.kinds()  # a reinvite only means something on an open stream
    rig.restore_signaling()
    await settle()
    assert call.status() is CallStatus.RECONNECTING  # resumed, media still away
    assert len(log.names()) == 3 and "reinvite" in rig.kinds()
    rig.media_up.set()
    await settle(1.5)
    assert log.since(3) == ["status:open", "reconnected"] and call.status() is CallStatus.OPEN
    call.disconnect()


@covers("media-back from reconnecting if media_lost signaling_lost",
        "signaling-lost from reconnecting if resumable")
async def test_media_back_while_the_signaling_is_away():
    call, rig, log = await open_incoming()
    log.clear()
    rig.media_up.clear()
    await settle(3.1)
    await settle()  # an attempt's reinvite was answered; it waits for media
    assert rig.of_kind("reinvite")
    rig.cut_signaling()
    rig.media_up.set()
    await settle(0.1)
    assert log.names() == ["status:reconnecting", "reconnecting", "reconnecting"]
    assert call.status() is CallStatus.RECONNECTING  # media back, signaling not
    rig.restore_signaling()
    await settle()
    assert log.since(3) == ["status:open", "reconnected"]
    call.disconnect()


# --- signaling lost when there is nothing to resume ----------------------------------------------
@covers("signaling-lost from connecting if outgoing", "signaling-lost from ringing if outgoing",
        "signaling-lost from pending", "signaling-lost from connecting")
async def test_signaling_lost_before_the_answer_ends_the_call():
    for ring in (False, True):
        call, rig, log = await place(ring=ring, answer=False)
        rig.cut_signaling()
        assert log.names()[-3:] == ["error", "status:closed", "disconnect"]
        assert log.codes("error") == [53001] and [t for t, _ in rig.queued] == ["hangup"]
    pending, rig, log = make_call(IN)
    await pending.prepare_incoming()
    rig.cut_signaling()
    assert log.names() == ["error", "status:closed", "cancel"] and rig.queued == []
    accepting, rig, log = make_call(IN)
    await accepting.prepare_incoming()
    task = accepting.accept()
    rig.cut_signaling()  # accepted, our answer not out yet
    await task
    assert log.names() == ["status:connecting", "error", "status:closed", "cancel"]
    assert rig.sent == []


@covers("signaling-lost from open if outgoing", "signaling-lost from open",
        "signaling-lost from reconnecting if outgoing", "signaling-lost from reconnecting")
async def test_signaling_lost_without_a_reconnect_token_ends_the_call():
    outgoing, rig, log = await place(token=None)
    rig.cut_signaling()
    assert log.since(4) == ["error", "status:closed", "disconnect"]
    incoming, rig, log = await open_incoming(token=None)
    rig.cut_signaling()
    assert log.since(3) == ["error", "status:closed", "cancel"]
    for opened in (place(token=None), open_incoming(token=None)):
        call, rig, log = await opened
        rig.media_up.clear()
        await settle(3.1)
        assert call.status() is CallStatus.RECONNECTING
        rig.cut_signaling()
        ending = "disconnect" if call.direction is OUT else "cancel"
        assert log.names()[-3:] == ["error", "status:closed", ending]


# --- failures -------------------------------------------------------------------------------------
@covers("error from connecting if was_up", "error from ringing if was_up",
        "error from reconnecting if was_up", "error from connecting",
        "remote-hangup from reconnecting")
async def test_media_that_cannot_be_set_up_fails_the_call():
    call, rig, log = make_call(OUT)
    rig.offer_fails = True
    with pytest.raises(TwilioError) as info:
        await call.start_outgoing("")
    assert info.value.code == 31000
    assert log.names() == ["error", "status:closed", "disconnect"] and log.codes("error") == [31000]
    ringing, rig, log = await place(answer=False)
    rig.media_up.clear()
    rig.frame("answer", {"callsid": CALLSID, "sdp": "v=0 answer"})
    await settle(10.1)  # the session's connect timeout
    assert log.since(2) == ["error", "status:closed", "disconnect"]
    assert log.codes("error") == [53405]
    assert "message" in rig.of_kind("hangup")[0]
    answered, rig, log = make_call(IN)
    rig.media_up.clear()
    await answered.prepare_incoming()
    answered.accept()
    await settle()
    rig.cut_signaling()
    await settle(10.1)
    assert log.names()[-3:] == ["error", "status:closed", "disconnect"]
    unanswered, rig, log = make_call(IN)
    await unanswered.prepare_incoming(gather=False)
    rig.prepare_fails = True
    await unanswered.accept()
    assert log.names() == ["status:connecting", "error", "status:closed"]  # never up: no disconnect
    assert rig.kinds() == ["hangup"]
    waiting, rig, log = await open_incoming()
    rig.cut_signaling()
    rig.frame("hangup", {"callsid": CALLSID})
    assert log.names()[-2:] == ["status:closed", "disconnect"]


async def _error_listener_hangs_up():
    call, rig, log = await place(answer=False)
    call.on("error", lambda error: call.disconnect())
    rig.media_up.clear()
    rig.frame("answer", {"callsid": CALLSID, "sdp": "v=0 answer"})
    await settle(10.1)
    assert log.since(2) == ["error", "status:closed", "disconnect"]  # once
    assert rig.kinds() == ["invite", "hangup"]


test_a_listener_that_hangs_up_on_error_ends_the_call_once = virtual_clock(
    _error_listener_hangs_up)


# --- digits ---------------------------------------------------------------------------------------
async def _digits():
    call, rig, log = await open_incoming()
    start = _now()
    await call.send_digits("12w3ww#")
    sent = [(payload["dtmf"], round(at - start, 3))
            for (kind, payload, _), at in zip(rig.sent, rig.sent_at, strict=True)
            if kind == "dtmf"]
    assert sent == [("12", 0.0), ("3", 0.5), ("#", 1.5)]
    rig.media_up.clear()
    await settle(3.1)
    with pytest.raises(TwilioError, match="while the call is reconnecting"):
        call.send_digits("4")
    call.disconnect()


test_digits_pause_half_a_second_per_w = virtual_clock(_digits)


def test_every_row_of_the_table_has_a_test():
    missing = sorted(ALL_CELLS - CLAIMED)
    assert not missing, f"rows of call_states.TRANSITIONS without a test: {missing}"


def test_the_table_reads_as_written():
    facts = Facts(outgoing=False, answered=True, has_token=True, media_lost=False,
                  signaling_lost=False)
    row = call_states.find(CallStatus.OPEN, call_states.CallEvent.MEDIA_LOST, facts)
    assert row is not None and row.to is CallStatus.RECONNECTING
    assert row.emits == ("reconnecting",) and row.do == "lose_media"
    assert call_states.find(CallStatus.CLOSED, call_states.CallEvent.HANGUP, facts) is None
    with pytest.raises(ValueError, match="unknown"):
        call_states._parse(("accept", "pending", "sometimes", "open", "", ""))


def _now() -> float:
    import asyncio

    return asyncio.get_running_loop().time()
