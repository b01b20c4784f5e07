"""Voicemail at the local exchange, with voice Devices: a call nobody answers (unanswered,
rejected, to a phone that is offline) is recorded; the owner's devices are told; the messages
are fetched over HTTP with the owner's token only; the exchange's limits hold."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from piphone.pcm import dominant_frequency
from piphone.voice import CallStatus
from piphone.voice.tokens import mint
from piphone.voice.voicemail import MailboxClient, VoicemailError

from .helpers import Events, hears, place_and_answer

pytestmark = pytest.mark.net

VOICEMAIL = {"voicemail": {"enabled": True, "ring_timeout": 0.5}}


def mailbox_of(exchange, identity: str, url: str) -> MailboxClient:
    token = mint(identity=identity, ttl=600, **exchange.config.token_kwargs())
    client = MailboxClient(lambda: token)
    client.url = url
    return client


async def notices(phone) -> asyncio.Queue:
    queue: asyncio.Queue = asyncio.Queue()
    phone.device.on("voicemail", queue.put_nowait)
    return queue


async def next_notice(queue: asyncio.Queue, timeout: float = 5.0) -> dict:
    return await asyncio.wait_for(queue.get(), timeout)


async def leave_message(alice, seconds: float, to: str = "bob") -> Events:
    """Alice calls, voicemail answers, she plays her tone ``seconds`` after the beep."""
    call = await alice.device.connect({"To": to})
    events = Events(call)
    await events.wait("accept", timeout=10)
    await asyncio.sleep(seconds + 0.6)  # the beep (0.5 s) and then her tone
    if call.status() is not CallStatus.CLOSED:
        call.disconnect()
    await events.wait("disconnect")
    return events


@pytest.mark.parametrize("exchange_cfg", [VOICEMAIL], indirect=True)
async def test_an_unanswered_call_is_recorded_and_only_its_owner_fetches_it(make_phone,
                                                                           exchange):
    alice = await make_phone("alice", tone=440)
    queue = await notices(bob := await make_phone("bob", tone=880))
    first = await next_notice(queue)  # at register: an empty mailbox and where it is
    assert (first["messages"], first["unheard"]) == (0, 0)
    assert first["url"].startswith("http://127.0.0.1:") and first["url"].endswith("/v1/Voicemail")
    events = await leave_message(alice, 1.5)
    assert events.names()[:2] == ["ringing", "accept"]
    ringing = await bob.next_call()
    assert ringing.status() is CallStatus.CLOSED  # voicemail took it from bob's phone
    notice = await next_notice(queue)
    assert (notice["messages"], notice["unheard"]) == (1, 1)

    mine = mailbox_of(exchange, "bob", notice["url"])
    (message,) = await mine.list()
    assert message.caller == "client:alice" and not message.heard
    assert 1.0 <= message.seconds <= 2.5
    # someone else's token sees an empty mailbox and cannot fetch or delete bob's message
    theirs = mailbox_of(exchange, "carol", notice["url"])
    assert await theirs.list() == []
    for attempt in (theirs.audio(message.sid), theirs.delete(message.sid),
                    theirs.heard(message.sid)):
        with pytest.raises(VoicemailError, match="HTTP 404"):
            await attempt
    forged = MailboxClient(lambda: "not-a-token")
    forged.url = notice["url"]
    with pytest.raises(VoicemailError, match="HTTP 401"):
        await forged.list()

    audio = await mine.audio(message.sid)
    assert abs(len(audio) / 48_000 - message.seconds) < 0.05
    middle = audio[len(audio) // 4: 3 * len(audio) // 4]
    assert abs(dominant_frequency(middle, 48_000) - 440) < 15  # alice's tone, not the beep
    assert queue.empty()  # fetched is not heard: the phone says when it played it all
    await mine.heard(message.sid)
    notice = await next_notice(queue)
    assert (notice["messages"], notice["unheard"]) == (1, 0)
    await mine.delete(message.sid)
    notice = await next_notice(queue)
    assert (notice["messages"], notice["unheard"]) == (0, 0)
    assert await mine.list() == []
    assert not exchange.calls.voicemail.diverted  # nothing left behind


@pytest.mark.parametrize("exchange_cfg", [VOICEMAIL], indirect=True)
async def test_an_identity_s_requests_are_limited(make_phone, exchange, monkeypatch):
    from piphone.exchange import mailbox_http

    monkeypatch.setattr(mailbox_http, "PER_MINUTE", 3)
    url = exchange.events.url_for("127.0.0.1", "/v1/Voicemail")
    mine, theirs = mailbox_of(exchange, "bob", url), mailbox_of(exchange, "carol", url)
    for _ in range(3):
        assert await mine.list() == []
    with pytest.raises(VoicemailError, match="HTTP 429"):
        await mine.list()
    assert await theirs.list() == []  # each identity has its own count


@pytest.mark.parametrize("exchange_cfg", [VOICEMAIL], indirect=True)
async def test_rejected_and_offline_calls_go_to_voicemail(make_phone, exchange):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob")
    call = await alice.device.connect({"To": "bob"})
    events = Events(call)
    (await bob.next_call()).reject()  # the reject button
    await events.wait("accept")
    call.disconnect()
    await events.wait("disconnect")
    await bob.device.unregister()
    events = await leave_message(alice, 1.0)  # bob is offline now: no ringing device at all
    assert "error" not in events.names()
    url = exchange.events.url_for("127.0.0.1", "/v1/Voicemail")
    messages = await mailbox_of(exchange, "bob", url).list()
    assert len(messages) == 1  # the rejected call was hung up during the beep: nothing kept
    assert messages[0].seconds >= 0.8


@pytest.mark.parametrize("exchange_cfg", [{"voicemail": {
    "enabled": True, "ring_timeout": 0.3, "max_seconds": 1.0, "max_messages": 1}}],
    indirect=True)
async def test_a_message_is_cut_at_its_limit_and_a_full_mailbox_takes_no_more(make_phone,
                                                                              exchange):
    alice = await make_phone("alice", tone=440)
    await make_phone("bob")
    call = await alice.device.connect({"To": "bob"})
    events = Events(call)
    await events.wait("accept", timeout=10)
    await events.wait("disconnect", timeout=6)  # the exchange hung up at the limit
    assert "error" not in events.names()
    url = exchange.events.url_for("127.0.0.1", "/v1/Voicemail")
    (message,) = await mailbox_of(exchange, "bob", url).list()
    assert 0.9 <= message.seconds <= 1.0
    audio = await mailbox_of(exchange, "bob", url).audio(message.sid)
    assert len(audio) <= 48_000 and np.abs(audio).max() > 1000
    # full: the next caller is not answered, the call ends unanswered as without voicemail
    call = await alice.device.connect({"To": "bob"})
    events = Events(call)
    (error,) = await events.wait("error", timeout=5)
    assert error.code == 31480 and "accept" not in events.names()


@pytest.mark.parametrize("exchange_cfg", [VOICEMAIL], indirect=True)
async def test_a_busy_callee_s_caller_leaves_a_message_and_the_call_goes_on(make_phone,
                                                                          exchange):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=880)
    carol = await make_phone("carol", tone=660)
    outgoing, incoming, out, _ = await place_and_answer(carol, bob)
    events = await leave_message(alice, 1.0)  # bob is busy: no ringing, voicemail at once
    assert "error" not in events.names() and bob.incoming.empty()
    assert outgoing.status() is CallStatus.OPEN
    await hears(carol, 880)
    url = exchange.events.url_for("127.0.0.1", "/v1/Voicemail")
    (message,) = await mailbox_of(exchange, "bob", url).list()
    assert message.caller == "client:alice"


@pytest.mark.parametrize("exchange_cfg", [{"voicemail": {
    "enabled": True, "ring_timeout": 0.5, "when_busy": False, "when_offline": False}}],
    indirect=True)
async def test_busy_and_offline_can_be_left_out(make_phone):
    alice = await make_phone("alice")
    call = await alice.device.connect({"To": "nobody"})  # not registered
    (error,) = await Events(call).wait("error")
    assert error.code == 31480
