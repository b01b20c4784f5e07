"""panel/pins.py: pin names resolve like gpiozero's, and bad maps fail before touching hardware."""

import pytest

from piphone.errors import ConfigError
from piphone.panel.pins import (
    DEFAULT_PINS,
    DESK_PINS,
    INPUT_NAMES,
    KEYPAD_MATRIX_PINS,
    KEYPAD_PINS,
    LED_NAMES,
    SPEED_KEYS,
    InputPin,
    PinMap,
    PinMapError,
    bcm,
    gpio_name,
    header_pin,
)


@pytest.mark.parametrize("spec", [17, "17", "GPIO17", "gpio17", "BCM17", "BOARD11", "J8:11"])
def test_every_gpiozero_spelling_is_the_same_pin(spec):
    assert gpio_name(spec) == "GPIO17"
    assert bcm(spec) == 17
    assert header_pin(spec) == 11


@pytest.mark.parametrize("spec, message", [
    (99, "unknown pin 99"),
    ("GPIO40", "unknown pin 'GPIO40'"),
    ("BOARD1", "pin 'BOARD1' is 3V3, not a GPIO pin"),
    ("BOARD6", "is GND, not a GPIO pin"),
    (True, "pin must be a number"),
    (1.5, "pin must be a number"),
])
def test_bad_pins_say_why(spec, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        gpio_name(spec)


def test_pin_used_twice_names_both_entries():
    message = r"leds.ring: pin GPIO17 is used twice \(also inputs.hook\)"
    with pytest.raises(PinMapError, match=message) as e:
        PinMap(inputs={"hook": InputPin(17)}, leds={"ring": "BOARD11"})
    assert e.value.key == "leds.ring"


@pytest.mark.parametrize("inputs, leds, key, message", [
    ({"hoook": InputPin(17)}, {}, "inputs.hoook", "unknown input 'hoook'"),
    ({}, {"bell": 17}, "leds.bell", "unknown led 'bell'"),
    ({"mute": 5}, {}, "inputs.mute", "expected an InputPin"),
    ({"mute": InputPin("GPIO77")}, {}, "inputs.mute", "unknown pin 'GPIO77'"),
    ({}, {"call": "5V"}, "leds.call", "is 5V, not a GPIO pin"),
])
def test_bad_maps_name_the_entry(inputs, leds, key, message):
    with pytest.raises(PinMapError, match=message) as e:
        PinMap(inputs=inputs, leds=leds)
    assert e.value.key == key
    assert isinstance(e.value, ConfigError) and isinstance(e.value, ValueError)


def test_default_map_and_keypad_fit_together_on_distinct_gpio():
    full = DEFAULT_PINS.merged(KEYPAD_PINS)
    # no GPIO is left for the hold, swap, transfer, conference and voicemail buttons: a build
    # gives them pins it has
    assert set(full.inputs) == set(INPUT_NAMES) - set(SPEED_KEYS) - {
        "missed", "hold", "swap", "transfer", "conference", "voicemail"}
    assert set(full.leds) == {"ring", "call", "mute", "warning"}
    pins = [bcm(p.pin) for p in full.inputs.values()] + [bcm(p) for p in full.leds.values()]
    assert len(pins) == len(set(pins)) == 26
    # ID EEPROM pins stay free for HATs.
    assert not {0, 1} & set(pins)


def test_the_desk_keys_fit_beside_the_matrix_keypad():
    full = DEFAULT_PINS.merged(KEYPAD_MATRIX_PINS).merged(DESK_PINS)
    # the speaker, hold and voicemail LEDs have no default pin; nor have the hold, swap,
    # transfer, conference and voicemail buttons
    assert set(full.leds) == set(LED_NAMES) - {"speaker", "hold", "voicemail"}
    assert not {"hold", "swap", "transfer", "conference", "voicemail"} & set(full.inputs)
    assert "speaker" in full.inputs
    assert {"missed", "speed_1", "speed_2"} <= set(full.inputs)
    used = [bcm(p.pin) for p in full.inputs.values()] + [bcm(p) for p in full.leds.values()]
    assert full.keypad is not None
    used += [bcm(p) for p in (*full.keypad.rows, *full.keypad.cols)]
    assert len(used) == len(set(used)) and not {0, 1} & set(used)


def test_default_inputs_are_contacts_to_ground_with_the_pull_up():
    assert all(p.pull_up and p.active_low for p in DEFAULT_PINS.merged(KEYPAD_PINS).inputs.values())


def test_map_is_frozen_against_later_changes():
    inputs = {"hook": InputPin(17)}
    pins = PinMap(inputs=inputs, leds={})
    inputs["mute"] = InputPin(5)
    assert "mute" not in pins.inputs
    with pytest.raises(TypeError):
        pins.inputs["mute"] = InputPin(5)  # type: ignore[index]
    assert pins.owner("BOARD11") == "inputs.hook" and pins.owner(5) is None
