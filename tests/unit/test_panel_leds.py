"""panel/leds.py on gpiozero's mock PWM pins: the cadence is read back from each pin's history."""

from __future__ import annotations

import asyncio

import pytest

from piphone.panel.leds import Leds, Pattern, Timings
from piphone.panel.pins import DEFAULT_PINS, PinMap, PinMapError

from ..conftest import until

FAST = Timings(fast_on=0.1, fast_off=0.1, slow_on=0.3, slow_off=0.3, fade_in=0.3, fade_out=0.3)


@pytest.fixture
def factory(monkeypatch):
    """gpiozero's mock factory with PWM pins, chosen the documented way, for this test only."""
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "mock")
    monkeypatch.setenv("GPIOZERO_MOCK_PIN_CLASS", "mockpwmpin")
    from gpiozero.pins.mock import MockFactory

    return MockFactory()


@pytest.fixture
def leds(factory):
    leds = Leds(DEFAULT_PINS, pin_factory=factory, timings=FAST)
    yield leds
    leds.close()


def pin(factory, name: str):
    return factory.pin(DEFAULT_PINS.leds[name])


async def history(p, changes: int, timeout: float = 10.0):
    """The pin's (seconds held, value) history once it has ``changes`` changes.

    gpiozero's mock pins have no change notification; poll its state list."""
    await until(lambda: len(p.states) > changes, timeout, what=f"{changes} pin changes")
    # states[i].timestamp is how long states[i-1] lasted.
    return [(p.states[i + 1].timestamp, p.states[i].state) for i in range(len(p.states) - 1)]


async def test_blink_fast_has_its_cadence(leds, factory):
    ring = pin(factory, "ring")
    ring.clear_states()
    leds.show({"ring": Pattern.BLINK_FAST})
    held = (await history(ring, 7))[1:7]  # skip the initial off
    assert [v for _, v in held] == [1.0, 0.0] * 3
    for seconds, _ in held:
        assert 0.07 < seconds < 0.6, held


async def test_blink_slow_and_the_other_leds_stay_as_asked(leds, factory):
    leds.show({"warning": Pattern.BLINK_SLOW, "mute": Pattern.ON})
    warning = pin(factory, "warning")
    held = (await history(warning, 4))[1:4]
    assert [v for _, v in held] == [1.0, 0.0, 1.0]
    assert all(0.2 < s < 1.0 for s, _ in held[:2]), held
    assert pin(factory, "mute").state == 1.0
    assert pin(factory, "ring").state == 0.0 and pin(factory, "call").state == 0.0


async def test_pulse_fades_through_intermediate_levels(leds, factory):
    call = pin(factory, "call")
    call.clear_states()
    leds.show({"call": Pattern.PULSE})
    held = await history(call, 40)
    values = [v for _, v in held]
    assert any(0.2 < v < 0.8 for v in values), values
    # up to full, back down to dark: one breath of fade_in + fade_out (0.6 s)
    top = next(i for i, v in enumerate(values) if v > 0.9)
    bottom = next(i for i in range(top, len(values)) if values[i] < 0.1)
    assert 0.15 < sum(s for s, _ in held[top:bottom]) < 1.0, held


async def test_show_is_idempotent_and_keeps_the_cadence(leds, factory):
    ring, mute = pin(factory, "ring"), pin(factory, "mute")
    leds.show({"mute": Pattern.ON})
    mute_changes = len(mute.states)
    ring.clear_states()
    leds.show({"ring": Pattern.BLINK_FAST, "mute": Pattern.ON})
    for _ in range(40):  # a display redrawn often must not restart the blink each time
        leds.show({"ring": Pattern.BLINK_FAST, "mute": "on"})
        await asyncio.sleep(0.01)
    held = (await history(ring, 5))[1:5]
    assert [v for _, v in held] == [1.0, 0.0, 1.0, 0.0]
    assert all(0.07 < s < 0.6 for s, _ in held), held
    assert len(mute.states) == mute_changes
    assert leds.shown == {"ring": Pattern.BLINK_FAST, "call": Pattern.OFF,
                          "mute": Pattern.ON, "warning": Pattern.OFF}


async def test_leds_not_named_go_off(leds, factory):
    leds.show({"ring": Pattern.BLINK_FAST, "call": Pattern.PULSE, "mute": Pattern.ON,
               "warning": Pattern.ON})
    leds.show({"mute": Pattern.ON})
    assert {n: pin(factory, n).state for n in DEFAULT_PINS.leds} == {
        "ring": 0.0, "call": 0.0, "mute": 1.0, "warning": 0.0}
    assert leds.value("mute") == 1.0 and leds.value("ring") == 0.0


def test_bad_names_and_patterns_change_nothing(leds, factory):
    leds.show({"mute": Pattern.ON})
    with pytest.raises(ValueError, match="unknown LED 'bell'"):
        leds.show({"bell": Pattern.ON})
    with pytest.raises(ValueError, match="unknown pattern 'strobe' for LED 'ring'"):
        leds.show({"ring": "strobe", "mute": Pattern.OFF})
    assert pin(factory, "mute").state == 1.0


def test_unwired_leds_are_ignored(factory):
    leds = Leds(PinMap(inputs={}, leds={"ring": 12}), pin_factory=factory)
    try:
        leds.show({"ring": Pattern.ON, "warning": Pattern.BLINK_FAST})
        assert leds.shown == {"ring": Pattern.ON}
    finally:
        leds.close()


async def test_without_pwm_a_pulse_is_a_slow_blink():
    from gpiozero.pins.mock import MockFactory, MockPin

    factory = MockFactory(pin_class=MockPin)  # no PWM at all: PWMLED would fail here
    pins = PinMap(inputs={}, leds=DEFAULT_PINS.leds, pwm_leds=False)
    leds = Leds(pins, pin_factory=factory, timings=FAST)
    try:
        call = factory.pin(DEFAULT_PINS.leds["call"])
        leds.show({"call": Pattern.PULSE})
        held = (await history(call, 3))[1:3]
        assert [v for _, v in held] == [True, False]
        assert all(0.2 < s < 1.0 for s, _ in held), held
    finally:
        leds.close()


def test_close_turns_everything_off_and_frees_the_pins(factory):
    leds = Leds(DEFAULT_PINS, pin_factory=factory)
    leds.show({"ring": Pattern.BLINK_FAST, "mute": Pattern.ON, "call": Pattern.PULSE})
    leds.close()
    leds.close()
    assert all(pin(factory, n).state == 0.0 for n in DEFAULT_PINS.leds)
    Leds(DEFAULT_PINS, pin_factory=factory).close()  # pins can be claimed again


def test_a_pin_in_use_names_the_led(factory):
    from gpiozero import Button

    taken = Button(DEFAULT_PINS.leds["warning"], pin_factory=factory)
    try:
        with pytest.raises(PinMapError, match="leds.warning"):
            Leds(DEFAULT_PINS, pin_factory=factory)
        # the LEDs made before the failure were released
        Leds(PinMap({}, {"ring": DEFAULT_PINS.leds["ring"]}), pin_factory=factory).close()
    finally:
        taken.close()


def test_timings_must_be_positive():
    with pytest.raises(ValueError, match="fast_on must be > 0"):
        Timings(fast_on=0)
