"""The phone's transfer rows (table.py, appliance/transfers.py), driven by the fake Call/Device
of test_appliance_phone's rig and a Transferer that records what it is asked."""

from __future__ import annotations

import pytest

from piphone.appliance.transfers import ExchangeTransfer
from piphone.appliance.twilio_transfer import TwilioTransfer, dial, transferer_for
from piphone.voice.errors import TwilioError

from .test_appliance_phone import Rig


class RecordingTransferer:
    conferences = True

    def __init__(self, fails: Exception | None = None) -> None:
        self.asked: list[tuple] = []
        self.fails = fails

    async def blind(self, call, to: str) -> None:
        self.asked.append(("blind", call, to))
        if self.fails:
            raise self.fails

    async def join(self, call, held, peer) -> None:
        self.asked.append(("join", call, held, peer))

    async def conference(self, call, held) -> None:
        self.asked.append(("conference", call, held))


@pytest.fixture
async def rig():
    rig = Rig()
    rig.phone.transferer = RecordingTransferer()
    return rig


async def keyed(rig, number: str, end: str) -> None:
    """TRANSFER, the number's keys, then ``end`` ("#" or "TRANSFER")."""
    rig.press("TRANSFER")
    for digit in number:
        rig.press("DIGIT", digit)
    if end == "#":
        rig.press("DIGIT", "#")
    else:
        rig.press(end)
    await rig.settle()


async def test_transfer_number_hash_hands_the_call_on_blind(rig):
    call = await rig.talking_call()
    rig.press("TRANSFER")
    assert rig.state == "transfer" and call.is_on_hold() and rig.sounds.playing == "dial"
    assert rig.leds.now["hold"] == "blink_slow"
    for digit in "200#":
        rig.press("DIGIT", digit)
    await rig.settle()
    assert rig.phone.transferer.asked == [("blind", call, "200")]
    call.far_hangup()  # the exchange hangs the phone up once the far party is handed on
    await rig.settle()
    assert rig.state == "dialing"  # the handset is still up


async def test_transfer_then_transfer_again_calls_first_and_then_joins(rig):
    first = await rig.talking_call()
    await keyed(rig, "200", "TRANSFER")
    assert rig.state == "calling"
    await rig.until(lambda: rig.phone.call is not None and rig.phone.call is not first)
    consultation = rig.phone.call
    assert rig.phone.held is first and first.is_on_hold()
    consultation.far_open()
    await rig.settle()
    assert rig.state == "talking"
    rig.press("TRANSFER")  # joins the two
    await rig.settle()
    assert rig.phone.transferer.asked == [("join", consultation, first, "200")]


async def test_hanging_up_the_consultation_returns_to_the_held_call(rig):
    first = await rig.talking_call()
    await keyed(rig, "200", "TRANSFER")
    await rig.until(lambda: rig.phone.call is not None and rig.phone.call is not first)
    rig.phone.call.far_open()
    await rig.settle()
    rig.press("REJECT")  # the handset is up: the held call is offered back
    assert rig.state == "held" and rig.phone.call is first
    rig.press("HOLD")
    assert rig.state == "talking" and not first.is_on_hold()


async def test_transfer_with_no_number_or_hold_takes_the_call_back(rig):
    call = await rig.talking_call()
    rig.press("TRANSFER")
    rig.press("TRANSFER")  # no digits: back to the call
    assert rig.state == "talking" and not call.is_on_hold()
    await keyed(rig, "2", "HOLD")
    assert rig.state == "talking" and not call.is_on_hold() and rig.phone.digits == ""
    assert rig.phone.transferer.asked == []


async def test_the_control_socket_transfers_blind_or_attended(rig):
    call = await rig.talking_call()
    assert rig.phone.transfer_call("client:bob")
    await rig.settle()
    assert rig.state == "talking" and rig.phone.transferer.asked == [("blind", call,
                                                                      "client:bob")]
    assert not rig.phone.transfer_call()  # nothing held: nothing to complete
    assert rig.phone.transfer_call("300", attended=True)
    assert rig.state == "calling" and rig.phone.held is call


async def test_a_failed_transfer_is_an_error_and_the_call_stays(rig):
    rig.phone.transferer = RecordingTransferer(fails=TwilioError(31480, "not registered"))
    call = await rig.talking_call()
    rig.phone.transfer_call("client:nobody")
    await rig.until(lambda: rig.phone.last_error is not None)
    assert rig.phone.last_error.code == 31480 and rig.state == "talking"
    assert call.status().value == "open"


async def test_without_a_transferer_the_key_does_nothing():
    rig = Rig()
    call = await rig.talking_call()
    rig.press("TRANSFER")
    assert rig.state == "talking" and not call.is_on_hold()
    assert not rig.phone.transfer_call("200")


def test_who_transfers_follows_the_config():
    from piphone.appliance import config as appliance_config

    exchange = appliance_config.AccountConfig("alice", "ws://x/signal", token="t")
    assert isinstance(transferer_for(exchange), ExchangeTransfer)
    twilio = appliance_config.AccountConfig(
        "alice", None, account_sid="AC" + "0" * 32, api_key_sid="SK" + "0" * 32,
        api_key_secret="secret")
    assert isinstance(transferer_for(twilio), TwilioTransfer)
    assert transferer_for(appliance_config.AccountConfig("alice", None, token="t")) is None


def test_the_twiml_dials_a_client_or_a_number():
    assert str(dial("client:bob")) == ('<?xml version="1.0" encoding="UTF-8"?><Response><Dial>'
                                       '<Client>bob</Client></Dial></Response>')
    assert "<Client>carol</Client>" in str(dial("carol"))
    assert "<Number>+15551230002</Number>" in str(dial("0015551230002"))
    assert "<Number>+15551230002</Number>" in str(dial("+15551230002"))
    assert "&lt;" in str(dial("+1<Play>x"))  # escaped, never TwiML of the caller's


async def test_conference_with_a_call_held_joins_the_three(rig):
    first = await keyed_consultation(rig)
    consultation = rig.phone.call
    rig.press("CONFERENCE")
    await rig.settle()
    assert rig.phone.transferer.asked == [("conference", consultation, first)]
    first.far_hangup()  # the exchange ends the phone's held call: its far party moved
    await rig.settle()
    assert rig.state == "talking" and rig.phone.held is None and rig.phone.call is consultation
    assert rig.phone.conference_call() is False  # nothing held any more


async def test_conference_needs_a_held_call_and_an_exchange(rig):
    await rig.talking_call()
    rig.press("CONFERENCE")
    assert rig.phone.transferer.asked == []
    rig.phone.transferer.conferences = False  # Twilio's: no conference
    await keyed_consultation(rig, talking=False)
    assert not rig.phone.conference_call() and rig.phone.transferer.asked == []


async def keyed_consultation(rig, talking: bool = True):
    """A call, then TRANSFER 200 TRANSFER, the consultation answered: returns the held call."""
    first = await rig.talking_call() if talking else rig.phone.call
    await keyed(rig, "200", "TRANSFER")
    await rig.until(lambda: rig.phone.call is not None and rig.phone.call is not first)
    rig.phone.call.far_open()
    await rig.settle()
    assert rig.state == "talking" and rig.phone.held is first
    return first
