"""panel/inputs.py on gpiozero's mock pins, driven the way a finger and a bouncing contact do.

Edges are driven from a worker thread (as gpiozero's own threads deliver them on a Pi), with
contact chatter: runs of sub-millisecond flips before the level settles.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from piphone.panel.inputs import Inputs, PanelEvent, PanelInput
from piphone.panel.pins import (
    DEFAULT_PINS,
    KEY_DIGITS,
    KEYPAD_PINS,
    InputPin,
    PinMap,
    PinMapError,
    mock_factory,
)

FULL = DEFAULT_PINS.merged(KEYPAD_PINS)


class Panel:
    """Inputs over mock pins with a queue of what they delivered and on which thread."""

    def __init__(self, pins: PinMap = FULL, debounce: float = 0.1, on_input=None) -> None:
        self.pins = pins
        self.factory = mock_factory()
        self.events: asyncio.Queue[PanelInput] = asyncio.Queue()
        self.threads: set[int] = set()
        self.inputs = Inputs(pins, on_input or self._record, loop=asyncio.get_running_loop(),
                             debounce=debounce, pin_factory=self.factory)

    @classmethod
    async def start(cls, *args, **kwargs) -> Panel:
        """A panel with the handset on its cradle (a mock pin starts at its pull, which for
        an active-high hook is the handset lifted)."""
        self = cls(*args, **kwargs)
        if "hook" in self.pins.inputs and self.inputs.off_hook:
            self.drive("hook", False)
            assert await self.next() == PanelInput(PanelEvent.ON_HOOK)
            assert await self.drained() == []
        return self

    def _record(self, event: PanelInput) -> None:
        self.threads.add(threading.get_ident())
        self.events.put_nowait(event)

    def pin(self, name: str):
        return self.factory.pin(self.pins.inputs[name].pin)

    def drive(self, name: str, active: bool) -> None:
        spec: InputPin = self.pins.inputs[name]
        pin = self.pin(name)
        (pin.drive_low if active == spec.active_low else pin.drive_high)()

    def chatter(self, name: str, active: bool, rng: random.Random, bounces: int = 6) -> None:
        """Go to ``active`` through ``bounces`` flips of 0.05-0.8 ms, then stay there."""
        for _ in range(bounces):
            self.drive(name, active)
            time.sleep(rng.uniform(0.00005, 0.0008))
            self.drive(name, not active)
            time.sleep(rng.uniform(0.00005, 0.0008))
        self.drive(name, active)

    async def in_thread(self, fn, *args) -> None:
        await asyncio.to_thread(fn, *args)

    async def next(self, timeout: float = 5.0) -> PanelInput:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def drained(self) -> list[PanelInput]:
        await asyncio.wait_for(self.inputs.settled(), 5)
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out


@pytest.fixture
async def panel():
    p = await Panel.start()
    yield p
    p.inputs.close()


def expected(name: str) -> PanelInput:
    if name in KEY_DIGITS:
        return PanelInput(PanelEvent.DIGIT, KEY_DIGITS[name])
    return PanelInput(PanelEvent(name))


async def test_every_button_and_key_acts_once_however_its_contacts_chatter():
    # Every button chatters at once, each from its own thread (as edges of different pins do
    # on a Pi). The lock-out is generous so a busy machine's late sleeps stay inside it.
    p = await Panel.start(debounce=0.25)
    names = [n for n in FULL.inputs if n != "hook"]

    async def all_go(active: bool) -> None:
        await asyncio.gather(*(p.in_thread(p.chatter, name, active, random.Random(i))
                               for i, name in enumerate(names)))
    try:
        await all_go(True)
        got = [await p.next() for _ in names]
        assert sorted(got, key=str) == sorted(map(expected, names), key=str)
        await all_go(False)
        assert await p.drained() == [], "a button acted twice"
        await all_go(True)  # and each acts again on its next press
        assert len([await p.next() for _ in names]) == len(names)
        assert await p.drained() == []
        assert p.threads == {threading.get_ident()}, "events must arrive on the loop's thread"
    finally:
        p.inputs.close()


async def test_hook_lift_and_replace_with_chatter(panel):
    rng = random.Random(1)
    assert not panel.inputs.off_hook
    await panel.in_thread(panel.chatter, "hook", True, rng, 10)
    assert await panel.next() == PanelInput(PanelEvent.OFF_HOOK)
    assert panel.inputs.off_hook
    assert await panel.drained() == []
    await panel.in_thread(panel.chatter, "hook", False, rng, 10)
    assert await panel.next() == PanelInput(PanelEvent.ON_HOOK)
    assert not panel.inputs.off_hook
    assert await panel.drained() == []


async def test_default_hook_is_low_when_lifted(panel):
    pin = panel.pin("hook")
    assert pin.state  # pulled up: the handset rests on the switch and opens its NC contact
    pin.drive_low()
    assert await panel.next() == PanelInput(PanelEvent.OFF_HOOK)
    pin.drive_high()
    assert await panel.next() == PanelInput(PanelEvent.ON_HOOK)


async def test_the_first_edge_acts_at_once_without_waiting_for_the_lockout():
    p = Panel(debounce=30.0)  # a lock-out far longer than the test
    try:
        t0 = asyncio.get_running_loop().time()
        p.drive("accept", True)
        assert await p.next() == PanelInput(PanelEvent.ACCEPT)
        assert asyncio.get_running_loop().time() - t0 < 1.0
    finally:
        p.inputs.close()


async def test_a_change_inside_the_lockout_is_taken_when_it_ends(panel):
    # Lift and put back faster than the lock-out: both are reported, in order, and the hook
    # ends settled on the hook.
    panel.drive("hook", True)
    panel.drive("hook", False)
    assert await panel.next() == PanelInput(PanelEvent.OFF_HOOK)
    assert await panel.next() == PanelInput(PanelEvent.ON_HOOK)
    assert not panel.inputs.off_hook
    # A tap shorter than the lock-out is one press, and the button is free again after it.
    panel.drive("mute", True)
    panel.drive("mute", False)
    assert await panel.drained() == [PanelInput(PanelEvent.MUTE)]
    panel.drive("mute", True)
    assert await panel.next() == PanelInput(PanelEvent.MUTE)


async def test_a_held_button_acts_once_and_a_second_press_acts_again(panel):
    panel.drive("redial", True)
    assert await panel.next() == PanelInput(PanelEvent.REDIAL)
    assert await panel.drained() == []  # held through the whole lock-out
    panel.drive("redial", False)
    assert await panel.drained() == []
    panel.drive("redial", True)
    assert await panel.next() == PanelInput(PanelEvent.REDIAL)


async def test_random_presses_on_random_inputs_act_exactly_once_each():
    # Quick chatter bursts on random inputs, interleaved so lock-outs overlap; each press is
    # held until its event arrives.
    p = await Panel.start(debounce=0.03)
    rng = random.Random(1000)
    names = [n for n in FULL.inputs if n != "hook"]
    recent: set[str] = set()
    try:
        for _ in range(300):
            if (name := rng.choice(names)) in recent:
                # Pressing a button again inside the lock-out of its last press would be lost
                # as bounce (as it should be; no finger is that fast): let it settle first.
                await p.inputs.settled()
                recent.clear()
            recent.add(name)
            for _ in range(rng.randrange(8)):
                p.drive(name, True)
                p.drive(name, False)
            p.drive(name, True)
            assert await p.next() == expected(name)
            for _ in range(rng.randrange(8)):
                p.drive(name, False)
                p.drive(name, True)
            p.drive(name, False)
        assert await p.drained() == []
    finally:
        p.inputs.close()


async def test_an_input_active_at_start_gives_no_event():
    # A hook wired active high (its NO contact) reads lifted from the start on a mock pin,
    # which sits at its pull-up; the phone reads off_hook rather than getting an event.
    pins = PinMap(inputs={"hook": InputPin(17, active_low=False)}, leds={})
    got: list[PanelInput] = []
    inputs = Inputs(pins, got.append, loop=asyncio.get_running_loop(),
                    pin_factory=mock_factory())
    try:
        assert inputs.off_hook
        await inputs.settled()
        assert got == []
    finally:
        inputs.close()


@pytest.mark.parametrize("spec, press", [
    (InputPin(5, pull_up=True, active_low=True), "drive_low"),
    (InputPin(5, pull_up=False, active_low=False), "drive_high"),   # to 3V3, pull-down
    (InputPin(5, pull_up=True, active_low=False), "drive_high"),    # opens when pressed
    (InputPin(5, pull_up=False, active_low=True), "drive_low"),     # external pull-up
])
async def test_pull_and_active_level_combinations(spec, press):
    p = await Panel.start(PinMap(inputs={"accept": spec}, leds={}), debounce=0.01)
    try:
        pin = p.pin("accept")
        release = "drive_high" if press == "drive_low" else "drive_low"
        getattr(pin, release)()
        assert await p.drained() == []
        getattr(pin, press)()
        assert await p.next() == PanelInput(PanelEvent.ACCEPT)
    finally:
        p.inputs.close()


async def test_a_failing_handler_does_not_stop_the_panel(caplog):
    calls: list[PanelInput] = []

    def handler(event: PanelInput) -> None:
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("boom")

    p = Panel(debounce=0.01, on_input=handler)
    try:
        p.drive("accept", True)
        p.drive("reject", True)
        await p.inputs.settled()
        assert [c.event for c in calls] == [PanelEvent.ACCEPT, PanelEvent.REJECT]
        assert "panel input handler failed" in caplog.text
    finally:
        p.inputs.close()


async def test_close_releases_pins_and_ignores_later_edges():
    p = Panel(debounce=10.0)
    p.drive("accept", True)
    await p.next()
    p.inputs.close()
    p.inputs.close()  # idempotent
    p.drive("accept", False)
    p.drive("hook", False)
    await asyncio.wait_for(p.inputs.settled(), 1)
    assert p.events.empty()
    # The pins are free again: a new panel on the same factory can claim them.
    again = Inputs(FULL, lambda e: None, loop=asyncio.get_running_loop(), pin_factory=p.factory)
    again.close()


async def test_edges_from_a_closed_loop_are_dropped_quietly():
    factory = mock_factory()
    loop = asyncio.new_event_loop()
    inputs = Inputs(DEFAULT_PINS, lambda e: None, loop=loop, pin_factory=factory)
    loop.close()
    factory.pin(27).drive_low()  # must not raise into gpiozero's thread
    inputs.close()


async def test_a_pin_that_cannot_be_set_up_names_the_input_and_frees_the_rest():
    factory = mock_factory()
    # GPIO2 has a fixed pull-up on the board: asking for a pull-down is refused.
    bad = PinMap(inputs={"hook": InputPin(17), "key_1": InputPin(2, pull_up=False)}, leds={})
    with pytest.raises(PinMapError, match="inputs.key_1: pin 2") as e:
        Inputs(bad, lambda e: None, loop=asyncio.get_running_loop(), pin_factory=factory)
    assert e.value.key == "inputs.key_1"
    Inputs(DEFAULT_PINS, lambda e: None, loop=asyncio.get_running_loop(),
           pin_factory=factory).close()  # GPIO17 was released


async def test_debounce_must_be_positive():
    with pytest.raises(ValueError, match="debounce must be > 0"):
        Inputs(DEFAULT_PINS, lambda e: None, loop=asyncio.get_running_loop(), debounce=0,
               pin_factory=mock_factory())
