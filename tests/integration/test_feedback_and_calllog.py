"""post_feedback as an Insights event (to a local stand-in for Twilio's event gateway, and to
the exchange's own), and the call log on the device and at the exchange."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web

from piphone.calllog import CallLog, track
from piphone.errors import InvalidArgumentError
from piphone.voice.insights import ENDPOINT

from ..conftest import until
from .helpers import place_and_answer, place_ringing

pytestmark = pytest.mark.net


class Gateway:
    """A stand-in for eventgw.twilio.com on 127.0.0.1: keeps every request it got."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.status = status
        self.delay = delay
        self.requests: list[tuple[dict, dict]] = []  # (headers, body)
        self.arrived = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append((dict(request.headers), body))
        self.arrived.set()
        if self.delay:
            await asyncio.sleep(self.delay)  # a gateway that does not answer in time
        return web.Response(status=self.status)

    async def __aenter__(self) -> Gateway:
        app = web.Application()
        app.router.add_post(ENDPOINT, self.handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}{ENDPOINT}"
        return self

    async def __aexit__(self, *exc) -> None:
        await self._runner.cleanup()


async def test_feedback_is_posted_with_the_sdk_headers_and_body(make_phone):
    async with Gateway() as gateway:
        alice = await make_phone("alice", event_gateway=gateway.url)
        bob = await make_phone("bob", tone=660)
        outgoing, _, _, _ = await place_and_answer(alice, bob)
        assert await asyncio.wait_for(outgoing.post_feedback(2, "choppy-audio"), 10) is True
        headers, body = gateway.requests[0]
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Twilio-Token"] == alice.device.token
        assert (body["group"], body["name"], body["level"]) == ("feedback", "received", "INFO")
        payload = body["payload"]
        assert payload["quality_score"] == 2 and payload["issue_name"] == "choppy-audio"
        assert payload["call_sid"] == outgoing.call_sid
        assert payload["temp_call_sid"] == outgoing.outbound_connection_id
        assert payload["direction"] == "OUTGOING" and payload["audio_codec"] == "opus"
        assert body["timestamp"].endswith("+00:00")
        # declined: received-none, no score
        assert await asyncio.wait_for(outgoing.post_feedback(), 10) is True
        _, declined = gateway.requests[1]
        assert declined["name"] == "received-none"
        assert "quality_score" not in declined["payload"]


async def test_bad_feedback_is_refused_before_anything_is_sent(make_phone):
    async with Gateway() as gateway:
        alice = await make_phone("alice", event_gateway=gateway.url)
        bob = await make_phone("bob", tone=660)
        outgoing, _, _, _ = await place_and_answer(alice, bob)
        for score, issue in ((0, None), (6, None), (True, None), ("5", None), (3, "bad-vibes")):
            with pytest.raises(InvalidArgumentError):
                outgoing.post_feedback(score, issue)
        await asyncio.sleep(0.2)  # nothing is on its way: give a wrong post the time to arrive
        assert gateway.requests == []


async def test_a_failing_or_silent_gateway_does_not_touch_the_call(make_phone):
    async with Gateway(status=500) as refusing, Gateway(delay=30) as silent:
        alice = await make_phone("alice", event_gateway=refusing.url)
        bob = await make_phone("bob", tone=660)
        outgoing, _, out_events, _ = await place_and_answer(alice, bob)
        assert await asyncio.wait_for(outgoing.post_feedback(5), 10) is False
        alice.device.update_options(event_gateway=silent.url)
        alice.device._publisher.timeout = 0.5  # bounded: the default is 5 s
        assert await asyncio.wait_for(outgoing.post_feedback(5), 10) is False
        assert silent.arrived.is_set()
        alice.device.update_options(event_gateway="http://127.0.0.1:9/nothing-listens-here")
        assert await asyncio.wait_for(outgoing.post_feedback(5), 10) is False
        assert str(outgoing.status()) == "open" and "error" not in out_events.names()


async def test_feedback_through_the_exchange_lands_in_its_call_log(make_phone, exchange):
    alice = await make_phone("alice")  # no gateway set: the exchange names its own
    bob = await make_phone("bob", tone=660)
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    assert alice.device.event_gateway == exchange.events.url_for("127.0.0.1")
    outgoing.disconnect()
    await outgoing.wait_closed()
    # after the call, as the SDK's examples do; the callee knows the call by its own CallSid
    assert await asyncio.wait_for(outgoing.post_feedback(4, "echo"), 10) is True
    assert await asyncio.wait_for(incoming.post_feedback(), 10) is True
    (record,) = exchange.records.log.recent()
    assert record.call_sid == outgoing.call_sid and record.outcome == "completed"
    assert [(f["party"], f["score"], f["issue"]) for f in record.feedback] == [
        ("alice", 4, "echo"), ("bob", None, None)]


async def test_the_exchange_gateway_refuses_bad_tokens_and_bad_events(make_phone, exchange):
    alice = await make_phone("alice")
    url = exchange.events.url_for("127.0.0.1")
    async with aiohttp.ClientSession() as session:
        async def post(body, token=alice.device.token):
            async with session.post(url, data=json.dumps(body), headers={
                    "Content-Type": "application/json", "X-Twilio-Token": token}) as response:
                return response.status, await response.json()

        feedback = {"group": "feedback", "name": "received",
                    "payload": {"call_sid": "CAnope", "quality_score": 3}}
        assert (await post(feedback, token="garbage"))[0] == 401
        assert (await post({"group": "feedback"}))[0] == 400
        bad = {**feedback, "payload": {"call_sid": "CAnope", "quality_score": 9}}
        assert (await post(bad))[0] == 400
        assert (await post(feedback))[0] == 404  # no such call
        assert (await post({"group": "connection", "name": "accepted-by-local"}))[0] == 200


async def test_call_log_rows_on_the_device_and_at_the_exchange(make_phone, exchange):
    device_log = CallLog()
    alice = await make_phone("alice")
    bob = await make_phone("bob", tone=660)
    bob.device.on("incoming", lambda call: track(device_log, call, identity="bob"))

    async def outgoing_tracked(params=None):
        out, inc, out_events, in_events = await place_ringing(alice, bob, params)
        return out, inc, out_events, in_events, track(device_log, out, identity="alice")

    # answered, then hung up by bob
    out, inc, out_events, in_events, _ = await outgoing_tracked()
    await asyncio.wait_for(inc.accept(), 5)
    await out_events.wait("accept")
    await until(lambda: out.quality.mos_values, 8, what="a sample with a MOS")
    inc.disconnect()
    await out_events.wait("disconnect")
    # rejected by bob
    out, inc, out_events, _, _ = await outgoing_tracked()
    inc.reject()
    await out_events.wait("disconnect")
    # cancelled by alice while it rings
    out, inc, out_events, in_events, _ = await outgoing_tracked()
    out.disconnect()
    await in_events.wait("cancel")
    # failed: nowhere to go
    nowhere = await alice.device.connect({"To": "+15550199"})  # not in the dial plan
    track(device_log, nowhere, identity="alice")
    await asyncio.wait_for(nowhere.wait_closed(), 5)
    await until(lambda: all(r.outcome for r in device_log.recent()), 5, what="rows ended")

    rows = device_log.recent()
    by = {(r.identity, r.direction): [] for r in rows}
    for r in rows:
        by[(r.identity, r.direction)].append(r)
    alice_rows = list(reversed(by[("alice", "OUTGOING")]))
    bob_rows = list(reversed(by[("bob", "INCOMING")]))
    assert [r.outcome for r in alice_rows] == ["completed", "rejected", "cancelled", "failed"]
    assert [r.outcome for r in bob_rows] == ["completed", "rejected", "cancelled"]
    answered = alice_rows[0]
    assert answered.peer == "bob" and answered.call_sid and answered.codec == "opus"
    assert answered.answered is not None and answered.ended >= answered.answered
    assert answered.mos_average is not None and answered.mos_minimum <= answered.mos_average
    assert bob_rows[0].peer == "client:alice"
    assert alice_rows[3].error.startswith("31404") and alice_rows[3].answered is None
    # the exchange logged the three calls it set up (the failed one never got that far)
    at_exchange = list(reversed(exchange.records.log.recent()))
    assert [r.outcome for r in at_exchange] == ["completed", "rejected", "cancelled"]
    assert [r.call_sid for r in at_exchange] == [r.call_sid for r in alice_rows[:3]]
    assert at_exchange[0].identity == "alice" and at_exchange[0].peer == "client:bob"


@pytest.mark.parametrize("exchange_cfg", [{"ring_timeout": 0.5}], indirect=True)
async def test_unanswered_call_is_no_answer_in_both_logs(make_phone, exchange):
    device_log = CallLog()
    alice = await make_phone("alice")
    bob = await make_phone("bob", tone=660)
    out, _, out_events, _ = await place_ringing(alice, bob)
    track(device_log, out, identity="alice")
    await out_events.wait("disconnect", timeout=5)
    await until(lambda: device_log.recent()[0].outcome is not None, 5, what="the row ended")
    assert device_log.recent()[0].outcome == "no-answer"
    assert exchange.records.log.recent()[0].outcome == "no-answer"
