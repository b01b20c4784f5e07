"""appliance/voicemail.py and its rows of the table: the message-waiting cue, the VOICEMAIL
key playing newest first, # and the key again skipping, 7 deleting, hanging up stopping; a
fake mailbox client stands in for the exchange (the integration tests use the real one)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
import pytest

from piphone.appliance import voicemail as voicemail_mod
from piphone.appliance.voicemail import PhoneMailbox
from piphone.voice.voicemail import VoicemailError, VoicemailMessage

from .test_appliance_phone import Rig


class FakeClient:
    """The exchange's mailbox: messages newest first; each message's audio is its number."""

    def __init__(self, count: int) -> None:
        self.url = "http://exchange/v1/Voicemail"
        self.messages = [VoicemailMessage(f"VM{n:032x}", f"client:caller{n}", 1000.0 - n, 0.02,
                                          False) for n in range(count)]
        self.heard_sids: list[str] = []
        self.deleted: list[str] = []
        self.fail = False

    async def list(self) -> list[VoicemailMessage]:
        if self.fail:
            raise VoicemailError("cannot reach the mailbox: refused")
        return list(self.messages)

    async def audio(self, sid: str) -> np.ndarray:
        number = int(sid[2:], 16)
        return np.full(960, number + 1, np.int16)  # 20 ms

    async def heard(self, sid: str) -> None:
        self.heard_sids.append(sid)
        self.messages = [replace(m, heard=True) if m.sid == sid else m for m in self.messages]

    async def delete(self, sid: str) -> None:
        self.deleted.append(sid)
        self.messages = [m for m in self.messages if m.sid != sid]


@pytest.fixture
async def vm(monkeypatch):
    monkeypatch.setattr(voicemail_mod, "GAP", 0.05)
    rig = Rig()
    client = FakeClient(3)
    played: list = []
    mailbox = PhoneMailbox(client, played.append)  # type: ignore[arg-type]
    mailbox.attach(rig.phone)
    yield rig, mailbox, client, played
    mailbox.close()
    rig.phone.close()


def numbers(played) -> list[int | None]:
    return [None if p is None else int(p[0]) - 1 for p in played]


async def test_the_cue_follows_the_exchange_and_the_key_needs_messages(vm):
    rig, mailbox, client, played = vm
    rig.press("VOICEMAIL")  # nothing known yet: the key does nothing
    assert rig.state == "idle" and "voicemail" not in rig.leds.now
    mailbox.on_notice({"messages": 3, "unheard": 2, "url": "http://elsewhere/v1/Voicemail"})
    assert rig.leds.now["voicemail"] == "blink_slow"
    assert client.url == "http://elsewhere/v1/Voicemail"  # the frame names where
    assert rig.phone.status()["voicemail"] == 2
    mailbox.on_notice({"messages": 3, "unheard": 0})
    assert "voicemail" not in rig.leds.now  # all heard: the cue is out, the messages kept


async def test_the_key_plays_newest_first_to_the_end_and_marks_each_heard(vm):
    rig, mailbox, client, played = vm
    mailbox.on_notice({"messages": 3, "unheard": 3})
    rig.press("OFF_HOOK")
    rig.press("VOICEMAIL")
    assert rig.state == "voicemail" and rig.leds.now["voicemail"] == "on"
    await rig.until(lambda: rig.state == "dialing")  # messages_done: back to the dial tone
    assert [n for n in numbers(played) if n is not None] == [0, 1, 2]
    assert client.heard_sids == [m.sid for m in client.messages]


async def test_skip_delete_and_hang_up(vm):
    rig, mailbox, client, played = vm
    mailbox.on_notice({"messages": 3, "unheard": 3})
    rig.press("OFF_HOOK")
    rig.press("VOICEMAIL")
    await rig.until(lambda: 0 in numbers(played))
    rig.press("DIGIT", "#")  # the next one, the first not heard
    await rig.until(lambda: 1 in numbers(played))
    assert client.heard_sids == []
    rig.press("DIGIT", "7")  # deletes message 1, then plays what is next: 2
    await rig.until(lambda: 2 in numbers(played))
    assert client.deleted == ["VM" + f"{1:032x}"]
    rig.press("VOICEMAIL")  # the key again: the next (none left)
    await rig.until(lambda: rig.state == "dialing")
    rig.press("VOICEMAIL")
    rig.press("DIGIT", "5")  # other keys do nothing while messages play
    assert rig.state == "voicemail"
    rig.press("ON_HOOK")
    assert rig.state == "idle" and played[-1] is None  # stopped


async def test_reject_stops_and_a_call_meanwhile_is_refused_as_busy(vm):
    rig, mailbox, client, played = vm
    mailbox.on_notice({"messages": 3, "unheard": 3})
    rig.press("VOICEMAIL")  # the handset down: idle plays too
    assert rig.state == "voicemail"
    call = await rig.ringing_call()
    assert call.actions == ["reject"] and rig.state == "voicemail"
    rig.press("OFF_HOOK")
    assert rig.state == "voicemail"
    rig.press("REJECT")
    assert rig.state == "dialing" and played[-1] is None
    rig.press("VOICEMAIL")
    rig.press("ON_HOOK")
    rig.press("VOICEMAIL")
    rig.press("REJECT")  # the handset down: back to idle
    assert rig.state == "idle"


async def test_an_exchange_that_fails_ends_playing_and_says_why(vm):
    rig, mailbox, client, played = vm
    client.fail = True
    mailbox.on_notice({"messages": 1, "unheard": 1})
    rig.press("VOICEMAIL")
    await rig.until(lambda: rig.state == "idle")
    assert "refused" in (mailbox.last_error or "")
    with pytest.raises(IndexError, match="no message 1"):
        mailbox.delete(1)


async def test_on_twilio_the_counts_come_from_polling_the_recordings(vm, monkeypatch):
    rig, mailbox, client, played = vm
    monkeypatch.setattr(voicemail_mod, "POLL", 0.02)
    mailbox.polled = True  # as PhoneMailbox.of makes it for an account on Twilio's edge
    client.messages = client.messages[:1]
    mailbox._tasks.spawn(mailbox._poll())
    await rig.until(lambda: rig.leds.now.get("voicemail") == "blink_slow")
    assert (mailbox.messages, mailbox.unheard) == (1, 1)
    rig.press("VOICEMAIL")
    await rig.until(lambda: rig.state == "idle")  # played to the end: heard, the cue out
    assert "voicemail" not in rig.leds.now and client.heard_sids == [client.messages[0].sid]
    await asyncio.sleep(0.1)  # polls go on: what was heard stays heard
    assert (mailbox.messages, mailbox.unheard) == (1, 0) and "voicemail" not in rig.leds.now
