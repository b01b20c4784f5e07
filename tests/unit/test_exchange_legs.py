"""exchange/legs.py: a session finds only its own legs, whatever ids a client chooses."""

from __future__ import annotations

from piphone.exchange.legs import CallLeg, ExchangeCall, LegIndex, Phase, new_call_sid
from piphone.exchange.routing import Route


class Session:
    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.sent: list[tuple[str, dict]] = []

    def send(self, type_: str, **payload) -> None:
        self.sent.append((type_, payload))


def leg_of(session, temp_id: str | None = None) -> CallLeg:
    call = ExchangeCall(sid=new_call_sid(), route=Route("line", "echo"))
    call.caller = CallLeg(call, session, call.sid, media=None, temp_id=temp_id)  # type: ignore[arg-type]
    return call.caller


def test_an_id_another_session_uses_finds_only_the_callers_own_leg():
    alice, mallory = Session("alice"), Session("mallory")
    index = LegIndex()
    victim = leg_of(alice, "TJSa")
    index.add(victim)
    # Mallory files a call under alice's CallSid and temporary id.
    intruder = leg_of(mallory, victim.id)
    index.add(intruder)
    assert index.find(alice, victim.id) is victim and index.find(alice, "TJSa") is victim
    assert index.find(mallory, victim.id) is intruder
    assert index.find(mallory, "TJSa") is None
    assert not index.in_use(mallory, "TJSa") and index.in_use(mallory, victim.id)
    assert index.of(alice) == [victim] and index.of(mallory) == [intruder]
    index.remove(intruder)  # her call ends: alice's is untouched
    assert index.find(alice, victim.id) is victim and len(index) == 1


def test_a_cut_off_leg_is_found_by_its_own_identity_only():
    alice = Session("alice")
    index = LegIndex()
    leg = leg_of(alice, "TJSa")
    index.add(leg)
    assert index.cut_off("alice", leg.id) is None  # its socket is still there
    index.detach(leg)
    assert leg.session is None and index.of(alice) == []
    assert index.find(alice, leg.id) is None and index.find(alice, "TJSa") is None
    assert index.cut_off("mallory", leg.id) is None
    assert index.cut_off("alice", "TJSa") is None  # a temporary id names nothing globally
    assert index.cut_off("alice", leg.id) is leg
    assert index.by_token(leg.reconnect_token) is leg
    later = Session("alice")
    index.attach(leg, later)
    assert index.find(later, leg.id) is leg and leg.session is later


def test_the_caller_is_told_its_temporary_id_until_the_call_rings():
    leg = leg_of(Session("alice"), "TJSa")
    assert leg.sid == "TJSa" and leg.call.phase is Phase.SETUP
    assert leg_of(Session("bob")).sid.startswith("CA")
