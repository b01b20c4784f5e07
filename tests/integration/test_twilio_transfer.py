"""Transfer on Twilio (appliance/twilio_transfer.py) against the stand-in of Twilio's REST API
(tests/twilio_rest): the phone's transferer, made from the config as the service makes it,
asks with its API key to redirect the far party's call to a ``<Dial>``; the stand-in records
each request. This process finds api.twilio.com at 127.0.0.1 (the stand-in serves it there,
over TLS that only the test CA vouches for); nothing in the product is told it is a test."""

from __future__ import annotations

import socket

import pytest

from piphone.appliance.config import AccountConfig
from piphone.appliance.twilio_transfer import TransferError, TwilioTransfer, transferer_for
from piphone.voice import CallDirection
from tests.appliance_doubles import FakeCall

from ..twilio_rest import API, TwilioRest

pytestmark = pytest.mark.net


@pytest.fixture
def rest(tmp_path, monkeypatch):
    with TwilioRest(tmp_path) as stand_in:
        real = socket.getaddrinfo

        def lookup(host, *args, **kwargs):
            return real("127.0.0.1" if host == API else host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", lookup)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(stand_in.ca_file))
        yield stand_in


@pytest.fixture
def transferer(rest) -> TwilioTransfer:
    key, secret = rest.add_key("alice's phone")
    made = transferer_for(AccountConfig("alice", None, account_sid=rest.account_sid,
                                        api_key_sid=key, api_key_secret=secret))
    assert isinstance(made, TwilioTransfer)
    made.key, made.secret = key, secret
    return made


def phone_call(sid: str, direction: CallDirection) -> FakeCall:
    call = FakeCall(direction)
    call.parameters["CallSid"] = sid
    return call


def twiml(rest, call: dict) -> list[str]:
    return [update["Twiml"] for update in call["updates"]]


async def test_a_call_the_phone_placed_redirects_its_child_the_far_party(rest, transferer):
    placed = rest.add_call(direction="inbound", frm="client:alice", to="+15551230002")
    far = rest.add_call(parent=placed["sid"])
    rest.add_call(parent=placed["sid"], status="completed")  # an earlier, ended attempt
    call = phone_call(placed["sid"], CallDirection.OUTGOING)
    await transferer.blind(call, "+15551230003")
    assert twiml(rest, far) == ['<?xml version="1.0" encoding="UTF-8"?><Response><Dial>'
                                '<Number>+15551230003</Number></Dial></Response>']
    assert call.actions[-1] == "disconnect"  # the phone leaves
    assert {r.user for r in rest.requests} == {transferer.key}  # the API key, never more
    assert [r.shape for r in rest.writes()] == [
        ("POST", API, "/2010-04-01/Accounts/AC*/Calls/CA*.json")]
    (listing,) = [r for r in rest.requests if r.method == "GET"]
    assert listing.value("ParentCallSid") == placed["sid"]
    assert listing.value("Status") == "in-progress"


async def test_a_call_the_phone_took_redirects_its_parent_the_caller(rest, transferer):
    caller = rest.add_call(direction="inbound", frm="+15559990000", to="+15551230001")
    taken = rest.add_call(parent=caller["sid"], to="client:alice")
    call = phone_call(taken["sid"], CallDirection.INCOMING)
    await transferer.blind(call, "client:bob")
    assert twiml(rest, caller) == ['<?xml version="1.0" encoding="UTF-8"?><Response><Dial>'
                                   '<Client>bob</Client></Dial></Response>']
    assert not taken["updates"] and call.actions[-1] == "disconnect"


async def test_attended_redirects_the_held_party_to_the_consultation_number(rest, transferer):
    held_parent = rest.add_call(frm="client:alice")
    held_far = rest.add_call(parent=held_parent["sid"])
    consultation = phone_call(rest.add_call(frm="client:alice")["sid"], CallDirection.OUTGOING)
    held = phone_call(held_parent["sid"], CallDirection.OUTGOING)
    await transferer.join(consultation, held, "client:carol")
    assert twiml(rest, held_far) == ['<?xml version="1.0" encoding="UTF-8"?><Response><Dial>'
                                     '<Client>carol</Client></Dial></Response>']
    assert held.actions[-1] == consultation.actions[-1] == "disconnect"


async def test_what_twilio_refuses_is_a_clear_error_and_the_call_stays(rest, transferer):
    placed = rest.add_call(frm="client:alice")
    call = phone_call(placed["sid"], CallDirection.OUTGOING)
    with pytest.raises(TransferError, match="0 calls in progress"):
        await transferer.blind(call, "+15551230003")  # no far party (yet)
    far = rest.add_call(parent=placed["sid"])
    rest.refusals.append(("POST", API, r".*/Calls/CA[0-9a-f]{32}\.json", 400, 21220,
                          "Call is not in-progress. Cannot redirect."))
    with pytest.raises(TransferError, match="21220") as refused:
        await transferer.blind(call, "+15551230003")
    assert transferer.secret not in str(refused.value)
    assert not far["updates"] and "disconnect" not in call.actions
