"""A matrix keypad (panel/keypad.py) through the real Inputs, on mock pins wired by MatrixSim."""

from __future__ import annotations

import asyncio

import pytest

from piphone.panel.inputs import Inputs, PanelEvent, PanelInput
from piphone.panel.keypad import MatrixScanner, MatrixSim
from piphone.panel.pins import (
    DEFAULT_PINS,
    KEY_DIGITS,
    KEYPAD_MATRIX_PINS,
    KEYPAD_PINS,
    InputPin,
    KeypadMatrix,
    PinMap,
    PinMapError,
    mock_factory,
)

PINS = DEFAULT_PINS.merged(KEYPAD_MATRIX_PINS)
MATRIX = KEYPAD_MATRIX_PINS.keypad


@pytest.fixture
async def keypad():
    factory = mock_factory()
    events: asyncio.Queue[PanelInput] = asyncio.Queue()
    inputs = Inputs(PINS, events.put_nowait, loop=asyncio.get_running_loop(),
                    debounce=0.05, pin_factory=factory)
    sim = MatrixSim(MATRIX, factory)  # attached after the scanner: it wires itself in
    yield inputs, sim, events
    inputs.close()


async def drained(inputs, events) -> list[PanelInput]:
    await asyncio.wait_for(inputs.settled(), 5)
    out = []
    while not events.empty():
        out.append(events.get_nowait())
    return out


async def test_every_key_of_the_matrix_is_one_digit(keypad):
    inputs, sim, events = keypad
    for name, digit in KEY_DIGITS.items():
        sim.press(name)
        assert await asyncio.wait_for(events.get(), 5) == PanelInput(PanelEvent.DIGIT, digit)
        sim.release(name)
        assert await drained(inputs, events) == [], name
    assert inputs._keypad.down == frozenset()


async def test_an_idle_keypad_is_not_polled(keypad):
    inputs, sim, events = keypad
    sim.press("key_5")
    await asyncio.wait_for(events.get(), 5)
    assert inputs._keypad._timer is not None  # polling while the key is down
    sim.release("key_5")
    await drained(inputs, events)  # the poll that saw the key up was the last one
    assert inputs._keypad._timer is None and inputs._keypad.down == frozenset()


async def test_two_keys_at_once_and_chatter(keypad):
    inputs, sim, events = keypad
    sim.press("key_1")
    sim.press("key_9")  # another row and column
    got = {await asyncio.wait_for(events.get(), 5) for _ in range(2)}
    assert got == {PanelInput(PanelEvent.DIGIT, "1"), PanelInput(PanelEvent.DIGIT, "9")}
    sim.release("key_1")
    sim.release("key_9")
    assert await drained(inputs, events) == []
    for _ in range(10):  # a bouncing contact
        sim.press("key_hash")
        sim.release("key_hash")
    sim.press("key_hash")
    assert await drained(inputs, events) == [PanelInput(PanelEvent.DIGIT, "#")]


async def test_buttons_still_work_beside_the_matrix(keypad):
    inputs, _, events = keypad
    factory_pin = inputs._inputs["mute"].button.pin
    factory_pin.drive_low()
    assert await asyncio.wait_for(events.get(), 5) == PanelInput(PanelEvent.MUTE)


async def test_a_key_held_at_start_is_found_without_an_edge():
    factory = mock_factory()
    sim = MatrixSim(MATRIX, factory)
    sim.press("key_7")
    seen: list[tuple[str, bool]] = []
    got = asyncio.Event()

    def level(name: str, down: bool) -> None:
        seen.append((name, down))
        got.set()
    scanner = MatrixScanner(MATRIX, level, loop=asyncio.get_running_loop(), pin_factory=factory)
    try:
        await asyncio.wait_for(got.wait(), 5)
        assert seen == [("key_7", True)]
    finally:
        scanner.close()
        scanner.close()


@pytest.mark.parametrize("kwargs, key, message", [
    (dict(rows=(7, 8, 9), cols=(11, 14, 15)), "keypad.rows", "3 rows for a layout of 4"),
    (dict(rows=(7, 8), cols=(11, 14), layout=("12", "3")), "keypad.cols",
     "2 columns for layout row '3'"),
    (dict(rows=(7,), cols=(11, 14), layout=("1A",)), "keypad.layout", "unknown key 'A'"),
    (dict(rows=(7,), cols=(11, 14), layout=("11",)), "keypad.layout", "a key appears twice"),
])
def test_bad_matrices(kwargs, key, message):
    with pytest.raises(PinMapError, match=message) as e:
        KeypadMatrix(**kwargs)
    assert e.value.key == key


def test_matrix_pins_clash_with_the_rest_of_the_map():
    with pytest.raises(PinMapError, match=r"keypad.cols.1: pin GPIO17 is used twice "
                                          r"\(also inputs.hook\)"):
        PinMap(inputs={"hook": InputPin(17)}, leds={},
               keypad=KeypadMatrix(rows=(7, 8, 9, 10), cols=(17, 14, 15)))
    with pytest.raises(PinMapError, match="inputs.key_1: this key is also on the keypad"):
        KEYPAD_PINS.merged(KEYPAD_MATRIX_PINS)
