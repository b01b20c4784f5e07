"""The exchange's event gateway against a token holder who is not a party (issue 14): feedback
only from the call's parties, once each, at a bounded rate, from a bounded body."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from piphone.voice.tokens import mint

from .helpers import place_and_answer

pytestmark = pytest.mark.net


@pytest.fixture
async def post(exchange):
    """post(body, identity=...) -> (status, reply) to the exchange's gateway."""
    url = exchange.events.url_for("127.0.0.1")
    async with aiohttp.ClientSession() as session:
        async def send(body, identity="mallory", raw: str | None = None):
            token = mint(identity=identity, ttl=600, **exchange.config.token_kwargs())
            data = raw if raw is not None else json.dumps(body)
            async with session.post(url, data=data, headers={
                    "Content-Type": "application/json", "X-Twilio-Token": token}) as response:
                try:
                    reply = await response.json()
                except (aiohttp.ContentTypeError, ValueError):
                    reply = await response.text()
                return response.status, reply

        yield send


def feedback(call_sid: str, score: int = 1) -> dict:
    return {"group": "feedback", "name": "received",
            "payload": {"call_sid": call_sid, "quality_score": score}}


@pytest.fixture
async def ended_call(make_phone):
    """A call alice made to bob, answered and ended: (alice's CallSid, bob's CallSid)."""
    alice = await make_phone("alice")
    bob = await make_phone("bob", tone=660)
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    outgoing.disconnect()
    await outgoing.wait_closed()
    return outgoing.call_sid, incoming.call_sid


async def test_feedback_on_someone_elses_call_is_refused(post, exchange, ended_call):
    caller_sid, callee_sid = ended_call
    for sid in (caller_sid, callee_sid):
        status, reply = await post(feedback(sid), identity="mallory")
        assert status == 404 and reply["message"].startswith("no call"), reply
    (record,) = exchange.records.log.recent()
    assert record.feedback == []
    # The parties may, each under the CallSid they know.
    assert (await post(feedback(caller_sid, 4), identity="alice"))[0] == 200
    assert (await post(feedback(callee_sid, 5), identity="bob"))[0] == 200
    (record,) = exchange.records.log.recent()
    assert [(f["party"], f["score"]) for f in record.feedback] == [("alice", 4), ("bob", 5)]


async def test_feedback_twice_on_one_call_is_refused(post, exchange, ended_call):
    caller_sid, _ = ended_call
    assert (await post(feedback(caller_sid, 4), identity="alice"))[0] == 200
    for _ in range(3):
        status, reply = await post(feedback(caller_sid, 1), identity="alice")
        assert status == 409 and "already" in reply["message"]
    (record,) = exchange.records.log.recent()
    assert [f["score"] for f in record.feedback] == [4]


@pytest.mark.parametrize("exchange_cfg", [{"feedback_per_minute": 5}], indirect=True)
async def test_a_feedback_flood_is_rate_limited(post, exchange):
    statuses = [(await post(feedback(f"CA{n:032x}")))[0] for n in range(12)]
    assert statuses == [404] * 5 + [429] * 7
    status, reply = await post(feedback("CA" + "0" * 32), identity="alice")  # not mallory's
    assert status == 404
    assert reply["code"] == 31000


async def test_a_30000_deep_json_body_gets_400_not_500(post):
    status, reply = await post(None, raw="[" * 30_000 + "]" * 30_000)
    assert status in (400, 413), reply  # bounded in size (413) or depth (400)
    status, reply = await post(None, raw="[" * 5_000 + "]" * 5_000)
    assert status == 400 and "nests deeper" in reply["message"]
    status, reply = await post(None, raw='{"group": "feedback", "name": "\\ud800"}')
    assert status == 400 and "not valid Unicode" in reply["message"]
    status, reply = await post(feedback("CA\x1b[2J\nforged"))
    assert status == 400 and "call_sid" in reply["message"]


async def test_an_oversized_body_is_refused(post):
    status, _ = await post({"group": "x", "name": "y", "pad": "z" * 20_000})
    assert status == 413


async def test_the_gateway_answers_500_and_keeps_serving_on_a_bug(post, exchange, monkeypatch,
                                                                   ended_call):
    caller_sid, _ = ended_call

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(exchange.records.log, "add_feedback", broken)
    status, reply = await post(feedback(caller_sid), identity="alice")
    assert status == 500 and reply == {"code": 31000, "message": "internal error"}
    monkeypatch.undo()
    status, _ = await asyncio.wait_for(post(feedback(caller_sid), identity="alice"), 5)
    assert status == 200
