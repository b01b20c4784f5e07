"""panel/terminal.py: keys press the real panel's mock pins; lamps show the real LED pins.

The live screen is driven through a pseudo-terminal: keys in, screen out."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest
from rich.console import Console

from piphone.panel.inputs import Inputs, PanelEvent, PanelInput
from piphone.panel.leds import Leds, Pattern
from piphone.panel.pins import DEFAULT_PINS, KEYPAD_PINS, LED_NAMES, mock_factory
from piphone.panel.terminal import _LAMP_RGB, KEYS, TerminalPanel

from ..conftest import until
from ..ptyscreen import Screen

FULL = DEFAULT_PINS.merged(KEYPAD_PINS)


@pytest.fixture
async def rig():
    loop = asyncio.get_running_loop()
    factory = mock_factory()
    events: asyncio.Queue[PanelInput] = asyncio.Queue()
    inputs = Inputs(FULL, events.put_nowait, loop=loop, pin_factory=factory)
    leds = Leds(FULL, pin_factory=factory)
    panel = TerminalPanel(FULL, factory, loop=loop)
    yield panel, inputs, leds, events
    panel.close()
    inputs.close()
    leds.close()


async def next_event(events) -> PanelInput:
    return await asyncio.wait_for(events.get(), 5)


async def test_keys_press_the_buttons_through_the_real_debounce(rig):
    panel, inputs, _, events = rig
    assert panel.press("h") == "hook"
    assert await next_event(events) == PanelInput(PanelEvent.OFF_HOOK)
    assert inputs.off_hook and panel.off_hook
    assert panel.feed("a5#*") == ["accept", "key_5", "key_hash", "key_star"]
    assert [await next_event(events) for _ in range(4)] == [
        PanelInput(PanelEvent.ACCEPT), PanelInput(PanelEvent.DIGIT, "5"),
        PanelInput(PanelEvent.DIGIT, "#"), PanelInput(PanelEvent.DIGIT, "*")]
    # Keys typed faster than a finger presses queue up: every one is a press, none doubled.
    assert panel.feed("mmm") == ["mute"] * 3
    assert [await next_event(events) for _ in range(3)] == [PanelInput(PanelEvent.MUTE)] * 3
    await inputs.settled()
    assert events.empty()
    panel.press(" ")
    assert await next_event(events) == PanelInput(PanelEvent.ON_HOOK)
    assert not inputs.off_hook


async def test_every_key_names_an_input_of_the_full_panel(rig):
    panel = rig[0]
    desk = {"missed", "speed_1", "speed_2"}  # DESK_PINS, beside a matrix keypad
    # hold, swap, transfer, conference and voicemail have no default pin (no GPIO is left):
    # their keys work on a map with them
    assert set(KEYS.values()) == set(FULL.inputs) | desk | {"hold", "swap", "transfer",
                                                              "conference", "voicemail"}
    assert panel.press("z") is None


async def test_keys_for_buttons_the_panel_lacks_do_nothing():
    factory = mock_factory()
    panel = TerminalPanel(DEFAULT_PINS, factory, loop=asyncio.get_running_loop())
    assert panel.feed("5#") == [None, None]


async def test_lamps_follow_the_led_pins(rig):
    panel, _, leds, _ = rig
    assert panel.lamps() == {name: 0.0 for name in FULL.leds}
    leds.show({"ring": Pattern.ON, "call": Pattern.PULSE})
    lamps = panel.lamps()
    assert lamps["ring"] == 1.0 and lamps["mute"] == 0.0
    console = Console(record=True, width=120, color_system="truecolor", force_terminal=True)
    console.print(panel.render({"state": "ringing"}, {"mic": 0.5}))
    text = console.export_text()
    assert "● ring" in text and "○ mute" in text and "handset on hook" in text
    assert re.search(r"state\s+ringing", text) and "█" * 10 + "░" * 10 in text
    assert set(_LAMP_RGB) == set(LED_NAMES)


async def test_the_live_screen_through_a_pseudo_terminal():
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2] / "firmware"))
    async with Screen.spawn([sys.executable, "-m", "piphone.panel.terminal"], env=env) as screen:
        await screen.wait_for(r"handset on hook")
        screen.type("h")
        await screen.wait_for(r"handset LIFTED")
        await screen.wait_for(r"last input\s+off_hook")
        screen.type("m")
        await screen.wait_for(r"last input\s+mute")
        screen.type("55#")
        await screen.wait_for(r"dialled\s+55#")
        screen.type("q")
        assert await screen.exited() == 0


async def test_lamps_show_the_real_blink(rig):
    panel, _, leds, _ = rig
    leds.show({"ring": Pattern.BLINK_FAST})
    seen: set[bool] = set()

    async def both():
        while len(seen) < 2:
            seen.add(panel.lamps()["ring"] > 0.5)
            await asyncio.sleep(0.02)  # sampling, as the live screen does at its frame rate
    await asyncio.wait_for(both(), 5)


async def test_one_finger_presses_in_order_and_close_lets_go(rig):
    panel, inputs, _, events = rig
    panel.feed("h55#")
    got = [await next_event(events) for _ in range(4)]
    assert got == [PanelInput(PanelEvent.OFF_HOOK), PanelInput(PanelEvent.DIGIT, "5"),
                   PanelInput(PanelEvent.DIGIT, "5"), PanelInput(PanelEvent.DIGIT, "#")]
    panel.feed("aaaa")
    assert await next_event(events) == PanelInput(PanelEvent.ACCEPT)
    panel.close()
    assert panel.idle and not panel._active("accept")
    await inputs.settled()
    assert events.empty()


async def test_run_survives_a_broken_info_and_quits_on_q(rig, caplog):
    panel = rig[0]
    read_fd, write_fd = os.pipe()
    calls = 0

    def info() -> dict[str, str]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("no state yet")
        return {"state": "idle"}

    console = Console(record=True, width=120, force_terminal=True)
    with os.fdopen(read_fd) as stdin:
        task = asyncio.ensure_future(panel.run(info, console=console, stdin=stdin, fps=50))
        os.write(write_fd, b"h")
        await until(lambda: calls >= 4, what="four frames drawn")
        os.write(write_fd, b"q")
        await asyncio.wait_for(task, 5)
    os.close(write_fd)
    text = console.export_text()
    assert "RuntimeError: no state yet" in text and "handset LIFTED" in text
    assert "info or levels failed" in caplog.text


async def test_keys_press_a_matrix_keypad_too():
    from piphone.panel.pins import KEYPAD_MATRIX_PINS

    loop = asyncio.get_running_loop()
    pins = DEFAULT_PINS.merged(KEYPAD_MATRIX_PINS)
    factory = mock_factory()
    events: asyncio.Queue[PanelInput] = asyncio.Queue()
    inputs = Inputs(pins, events.put_nowait, loop=loop, pin_factory=factory)
    panel = TerminalPanel(pins, factory, loop=loop)
    try:
        assert panel.feed("h*0#m") == ["hook", "key_star", "key_0", "key_hash", "mute"]
        got = [await next_event(events) for _ in range(5)]
        assert got == [PanelInput(PanelEvent.OFF_HOOK), PanelInput(PanelEvent.DIGIT, "*"),
                       PanelInput(PanelEvent.DIGIT, "0"), PanelInput(PanelEvent.DIGIT, "#"),
                       PanelInput(PanelEvent.MUTE)]
    finally:
        panel.close()
        inputs.close()
