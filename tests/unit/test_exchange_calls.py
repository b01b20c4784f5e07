"""exchange/calls.py behind its interfaces: parties that only send frames, media that only
answers, no socket and no peer connection. What the call layer needs is what it is given."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from piphone.exchange import config as exchange_config
from piphone.exchange.auth import Grant
from piphone.exchange.calls import CallTable
from piphone.exchange.legs import Phase
from piphone.exchange.records import CallRecords
from piphone.exchange.routing import DialPlan, Registrations
from piphone.voice import protocol


class Party:
    """A session as the call layer knows it (legs.Party): identity, grant, send."""

    def __init__(self, identity: str, outgoing: bool = True) -> None:
        self.identity = identity
        self.grant = Grant(identity, expires_at=2e9, incoming_allowed=True,
                           outgoing_allowed=outgoing)
        self.sent: list[tuple[str, dict]] = []

    def send(self, type_: str, **payload) -> None:
        self.sent.append((type_, payload))

    def got(self, type_: str) -> list[dict]:
        return [payload for t, payload in self.sent if t == type_]

    def __repr__(self) -> str:
        return f"<party {self.identity}>"


class FakeLegMedia:
    """One leg's media (media.LegMedia's interface) that negotiates at once."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.settings = None
        self.codec = "opus"
        self.connected = True
        self.closed = False

    async def offer(self) -> str:
        return f"offer from {self.kind}"

    async def prepare_answer(self, offer_sdp: str) -> None:
        self.offered = offer_sdp

    async def answer(self) -> str:
        return f"answer from {self.kind}"

    async def apply_answer(self, sdp: str) -> None:
        self.answered = sdp

    def remote_sdp(self) -> str:  # what the client sent: its offer, or its answer
        return getattr(self, "offered", None) or getattr(self, "answered", "")

    def local_sdp(self) -> str:
        return f"answer from {self.kind}"

    async def counters(self):
        return None

    async def close(self) -> None:
        self.closed = True


class FakeMedia:
    """media.MediaBridge's interface: makes legs' media, joins two."""

    def __init__(self) -> None:
        self.made: list[FakeLegMedia] = []
        self.joined: list[tuple[FakeLegMedia, FakeLegMedia]] = []
        self.played: list[tuple[FakeLegMedia, object, FakeMixer]] = []  # (to, source, player)

    def _make(self, kind: str) -> FakeLegMedia:
        self.made.append(FakeLegMedia(kind))
        return self.made[-1]

    def taken(self, sdp: str) -> tuple[str, ...]:
        return ("opus",) if "opus" in sdp else ()

    def for_caller(self, route, offer_sdp: str) -> FakeLegMedia:
        return self._make(f"{route.kind} caller")

    def for_fork(self, caller: FakeLegMedia) -> FakeLegMedia:
        return self._make("fork")

    def for_restart(self, old: FakeLegMedia, offered, line) -> FakeLegMedia:
        return self._make(f"restart of {old.kind}")

    def join(self, a: FakeLegMedia, b: FakeLegMedia) -> str:
        self.joined.append((a, b))
        return "forwarded"

    def play(self, media: FakeLegMedia, source) -> FakeMixer:  # a ringback (transfers.py)
        player = FakeMixer()  # what the exchange does with one: stop it
        self.played.append((media, source, player))
        return player

    def mix(self, mixer, legs):  # a conference (conference.py): the members of each mix
        mixer = mixer or FakeMixer()
        mixer.members.append(list(legs))
        return mixer


class FakeMixer:
    def __init__(self) -> None:
        self.members: list[list[FakeLegMedia]] = []
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


def frame(type_: str, **payload) -> protocol.Frame:
    decoded = protocol.decode(json.dumps({"type": type_, "payload": payload}),
                              protocol.CLIENT_FRAMES)
    assert decoded is not None
    return decoded


def invite(callsid: str, to: str, sdp: str = "opus offer") -> protocol.Frame:
    return frame("invite", callsid=callsid, sdp=sdp,
                 twilio={"params": protocol.encode_params({"To": to})})


async def settled(predicate, what: str) -> None:
    """The call layer's set-up runs in tasks that await nothing real here: a few turns of the
    loop finish it."""
    for _ in range(50):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"not settled: {what}")


async def answered(table):
    """alice calls bob, bob answers: (alice, bob, the call)."""
    alice, bob = Party("alice"), Party("bob")
    table.registrations.add("bob", bob)
    table.handle(alice, invite("TJSa", "bob"))
    await settled(lambda: alice.got("ringing"), "bob rings")
    table.handle(bob, frame("answer", callsid=bob.got("invite")[0]["callsid"], sdp="answer"))
    await settled(lambda: alice.got("answer"), "alice's answer")
    (call,) = table.calls
    return alice, bob, call


@pytest.fixture
async def table():
    cfg = exchange_config.ExchangeConfig("AC" + "0" * 32, "SK" + "0" * 32, "s" * 16,
                                         numbers={"100": "bob"})
    registrations: Registrations[Party] = Registrations()
    media = FakeMedia()
    records = CallRecords.open(None)
    calls = CallTable(cfg, dial_plan=DialPlan(cfg), registered=registrations.of, media=media,
                      records=records)
    calls.registrations, calls.fake_media, calls.records = registrations, media, records
    yield calls
    await calls.close()
    records.close()


async def test_a_call_rings_every_device_and_the_first_to_answer_talks(table):
    alice, bob_desk, bob_pocket = Party("alice"), Party("bob"), Party("bob")
    table.registrations.add("bob", bob_desk)
    table.registrations.add("bob", bob_pocket)
    table.handle(alice, invite("TJSa", "100"))
    await settled(lambda: alice.got("ringing"), "alice hears ringing")
    (call,) = table.calls
    (ring_desk,), (ring_pocket,) = bob_desk.got("invite"), bob_pocket.got("invite")
    assert ring_desk["sdp"] == "offer from fork" and ring_desk["callsid"] != ring_pocket["callsid"]
    assert ring_desk["parameters"]["From"] == "client:alice"
    assert alice.got("ringing") == [{"callsid": call.sid}]

    table.handle(bob_pocket, frame("answer", callsid=ring_pocket["callsid"], sdp="bob answer"))
    await settled(lambda: alice.got("answer"), "alice's answer")
    assert bob_desk.got("cancel") == [{"callsid": ring_desk["callsid"]}]
    assert alice.got("answer")[0]["sdp"] == "answer from client caller"
    assert call.phase is Phase.ANSWERED and call.callee.session is bob_pocket
    assert table.fake_media.joined == [(call.caller.media, call.callee.media)]
    assert call.callee.media.answered == "bob answer"

    table.handle(alice, frame("hangup", callsid=call.sid))
    assert bob_pocket.got("hangup") == [{"callsid": ring_pocket["callsid"]}]
    assert not table.calls and not len(table.legs)
    await settled(lambda: all(m.closed for m in table.fake_media.made), "media closed")
    (row,) = table.records.log.recent(1)
    assert row.outcome == "completed" and row.identity == "alice" and row.codec == "opus"


@pytest.mark.parametrize(("caller", "to", "code"), [
    (Party("alice", outgoing=False), "bob", 31002),  # the token allows no outgoing call
    (Party("alice"), "+15550199", 31404),  # a number not in the dial plan
    (Party("alice"), "carol", 31480),  # nobody registered as carol
])
async def test_a_refused_call_files_nothing(table, caller, to, code):
    table.handle(caller, invite("TJSa", to))
    (hangup,) = caller.got("hangup")
    assert hangup["callsid"] == "TJSa" and hangup["error"]["code"] == code
    assert not table.calls and not table.fake_media.made


async def test_a_cut_off_leg_is_resumed_by_its_own_identity_from_a_new_session(table):
    alice, bob, call = await answered(table)
    token = alice.got("answer")[0]["reconnect"]

    table.session_closed(alice)  # her socket went: the call waits for her
    assert call.phase is Phase.ANSWERED and call.caller.session is None
    mallory = Party("mallory")
    table.handle(mallory, frame("invite", callsid="TJSm", sdp="x", reconnect=token))
    assert mallory.got("hangup")[0]["error"]["code"] == 31209
    again = Party("alice")
    table.handle(again, frame("invite", callsid="TJSb", sdp="x", reconnect=token))
    assert again.got("answer") == [{"callsid": call.sid, "sdp": "answer from client caller",
                                    "reconnect": token}]
    assert call.caller.session is again

    table.handle(again, frame("reinvite", callsid=call.sid, sdp="opus restart"))
    await settled(lambda: len(again.got("answer")) == 2, "the restart's answer")
    assert call.caller.media.kind == "restart of client caller"
    assert table.fake_media.joined[-1] == (call.caller.media, call.callee.media)


async def test_the_call_layer_takes_the_settings_it_is_given(table):
    """Limits come from the config handed in, not from anywhere else."""
    one = replace(exchange_config.ExchangeConfig("AC" + "0" * 32, "SK" + "0" * 32, "s" * 16),
                  max_calls=1)
    calls = CallTable(one, dial_plan=DialPlan(one), registered=lambda identity: [],
                      media=FakeMedia(), records=table.records)
    alice = Party("alice")
    calls.handle(alice, invite("TJS1", "echo"))
    calls.handle(alice, invite("TJS2", "echo"))
    assert alice.got("hangup")[-1]["error"]["code"] == 31005
    await calls.close()
