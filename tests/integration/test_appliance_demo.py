"""`piphone run --terminal` on a pseudo-terminal: the caller rings the phone, keys lift the
handset (answer), mute, and hang up, and the screen shows each state; q quits cleanly."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ..ptyscreen import Screen

pytestmark = pytest.mark.net

ROOT = Path(__file__).resolve().parents[2]


async def test_answer_mute_hang_up_with_keys():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "firmware"))
    argv = [sys.executable, "-m", "piphone", "run", "--terminal", "--call-every", "0.5"]
    async with Screen.spawn(argv, env=env) as screen:
        await screen.wait_for(r"state\s+ringing", timeout=30)
        await screen.wait_for(r"● ring")  # the ring lamp lit (it blinks)
        screen.type("h")
        await screen.wait_for(r"talking to Caller \(client:caller\)")  # a contact's name
        await screen.wait_for(r"● call")
        screen.type("m")
        await screen.wait_for(r"talking to Caller \(client:caller\), muted")
        await screen.wait_for(r"● mute")
        screen.type("h")
        await screen.wait_for(r"state\s+idle")  # (wait_for reads the last frames only)
        screen.type("k")  # speed dial 2: the contact "Echo", the exchange's echo line
        await screen.wait_for(r"talking to Echo \(2\)", timeout=15)
        screen.type("x")  # reject hangs up
        await screen.wait_for(r"state\s+idle")
        screen.type("q")
        assert await screen.exited(20) == 0


async def test_a_call_left_ringing_goes_to_voicemail_and_v_plays_it():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "firmware"))
    argv = [sys.executable, "-m", "piphone", "run", "--terminal", "--call-every", "0.5"]
    async with Screen.spawn(argv, env=env) as screen:
        await screen.wait_for(r"state\s+ringing", timeout=30)
        # nobody answers: the exchange's voicemail takes it after 10 s (the phone stops
        # ringing) and records the caller's tone for 4 s, while the caller is busy
        await screen.wait_for(r"state\s+idle", timeout=30)
        screen.type("d")  # do-not-disturb: the demo caller calls no more (before, the next
        await screen.wait_for(r"do not disturb\s+on")  # call could ring in before the key)
        await screen.wait_for(r"voicemail\s+1 new of 1", timeout=30)
        await screen.wait_for(r"● voicemail")  # the message-waiting lamp (it blinks)
        screen.type("h")
        await screen.wait_for(r"state\s+dialing")
        screen.type("v")
        await screen.wait_for(r"state\s+voicemail")
        screen.type("7")  # deletes the one playing
        await screen.wait_for(r"state\s+dialing", timeout=10)
        await screen.wait_for(r"voicemail\s+none")
        screen.type("q")
        assert await screen.exited(20) == 0
