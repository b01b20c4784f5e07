"""The panel's pin map: which GPIO each input and LED is wired to, and how.

Pins are named the way gpiozero names them (``17``, ``"GPIO17"``, ``"BCM17"``, ``"BOARD11"``,
``"J8:11"``); a map is checked against the 40-pin header of the Raspberry Pi (the same on a 3B+,
4, 5 and Zero 2 W) when it is built, so an unknown pin or a pin used twice is an error before any
hardware is touched. Nothing here imports a pin factory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Any

from piphone.errors import ConfigError

BUTTON_NAMES = ("accept", "reject", "ignore", "mute", "volume_up", "volume_down", "redial", "dnd",
                "speaker", "missed", "hold", "swap", "transfer",
                "conference", "voicemail")
KEY_DIGITS = {f"key_{d}": d for d in "0123456789"} | {"key_star": "*", "key_hash": "#"}
SPEED_KEYS = {f"speed_{n}": str(n) for n in range(1, 10)}  # speed-dial keys -> [contacts] speed
INPUT_NAMES = ("hook", *BUTTON_NAMES, *KEY_DIGITS, *SPEED_KEYS)
LED_NAMES = ("ring", "call", "mute", "warning", "speaker", "dnd", "missed", "hold", "voicemail")

# Any 40-pin Pi will do: the header's GPIO numbering is the same on every model we support.
_HEADER_REVISION = 0xC03111  # Pi 4 B


class PinMapError(ConfigError):
    """A pin map names an unknown input, LED or pin, or uses a pin twice.

    ``key`` is the offending entry (``"inputs.mute"``, ``"leds.ring"``) so a config loader can
    point at the file and line it came from. A ConfigError (and so a ValueError), so whatever
    stops start-up on a bad config stops it on this too.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True)
class InputPin:
    """One switch. ``pull_up``: the Pi's internal pull-up (True) or pull-down (False) is on.
    ``active_low``: the input means "active" (pressed; for the hook: handset lifted) when the
    pin reads low. A button to ground with the pull-up is the usual case (both True)."""

    pin: str | int
    pull_up: bool = True
    active_low: bool = True


@cache
def _header():
    from gpiozero.pins.pi import PiBoardInfo  # data tables only: no pin factory, no hardware

    return PiBoardInfo.from_revision(_HEADER_REVISION)


def gpio_name(pin: str | int) -> str:
    """The canonical ``"GPIOn"`` name of a pin spec, or ValueError if it is no GPIO pin."""
    if isinstance(pin, bool) or not isinstance(pin, str | int):
        raise ValueError(f"pin must be a number or a name like 'GPIO17', not {pin!r}")
    spec = pin.strip().upper() if isinstance(pin, str) else pin
    for _, info in _header().find_pin(spec):
        if "gpio" in info.interfaces:
            return info.name
        raise ValueError(f"pin {pin!r} is {info.name}, not a GPIO pin")
    raise ValueError(f"unknown pin {pin!r} (use a BCM number like 17 or a name like 'GPIO17')")


def bcm(pin: str | int) -> int:
    """The BCM number of a pin spec: ``bcm("BOARD11") == 17``."""
    return int(gpio_name(pin).removeprefix("GPIO"))


def header_pin(pin: str | int) -> int:
    """The physical pin number on the 40-pin header: ``header_pin(17) == 11``."""
    name = gpio_name(pin)
    return next(info.number for _, info in _header().find_pin(name))


@dataclass(frozen=True)
class KeypadMatrix:
    """A matrix keypad: a key joins its row to its column. ``layout`` names the keys row by
    row (a phone's 4x3 by default). Rows are driven low, columns read with pull-ups."""

    rows: tuple[str | int, ...]
    cols: tuple[str | int, ...]
    layout: tuple[str, ...] = ("123", "456", "789", "*0#")

    def __post_init__(self) -> None:
        object.__setattr__(self, "rows", tuple(self.rows))
        object.__setattr__(self, "cols", tuple(self.cols))
        object.__setattr__(self, "layout", tuple(self.layout))
        if len(self.layout) != len(self.rows):
            raise PinMapError("keypad.rows", f"{len(self.rows)} rows for a layout of "
                                             f"{len(self.layout)}")
        digits = set(KEY_DIGITS.values())
        for line in self.layout:
            if len(line) != len(self.cols):
                raise PinMapError("keypad.cols", f"{len(self.cols)} columns for layout row "
                                                 f"{line!r}")
            if bad := set(line) - digits:
                raise PinMapError("keypad.layout", f"unknown key {sorted(bad)[0]!r} "
                                                   "(keys are 0-9, * and #)")
        keys = "".join(self.layout)
        if len(set(keys)) != len(keys):
            raise PinMapError("keypad.layout", "a key appears twice")

    def keys(self) -> dict[tuple[int, int], str]:
        """(row, column) -> input name (``"key_5"``)."""
        names = {d: n for n, d in KEY_DIGITS.items()}
        return {(r, c): names[k] for r, line in enumerate(self.layout)
                for c, k in enumerate(line)}


@dataclass(frozen=True)
class PinMap:
    """Inputs and LEDs by name (every one optional); ``pwm_leds``: drive LEDs with PWM so
    they can pulse (gpiozero ``PWMLED``) rather than only switch (``LED``); ``keypad``: a
    matrix keypad, instead of (or beside) keys wired one per pin."""

    inputs: Mapping[str, InputPin]
    leds: Mapping[str, str | int]
    pwm_leds: bool = True
    keypad: KeypadMatrix | None = None
    _used: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        used: dict[str, str] = {}  # "GPIO17" -> "inputs.hook"
        entries: list[tuple[str, Mapping[Any, InputPin | str | int], tuple[str, ...] | None]] = [
            ("inputs", self.inputs, INPUT_NAMES), ("leds", self.leds, LED_NAMES)]
        if self.keypad is not None:
            if not isinstance(self.keypad, KeypadMatrix):
                raise PinMapError("keypad", f"expected a KeypadMatrix, not {self.keypad!r}")
            entries += [("keypad.rows", dict(enumerate(self.keypad.rows, 1)), None),
                        ("keypad.cols", dict(enumerate(self.keypad.cols, 1)), None)]
            for key in self.keypad.keys().values():
                if key in self.inputs:
                    raise PinMapError(f"inputs.{key}", "this key is also on the keypad matrix")
        for section, table, names in entries:
            for name, value in table.items():
                key = f"{section}.{name}"
                if names is not None and name not in names:
                    raise PinMapError(key, f"unknown {section[:-1]} {name!r} "
                                           f"(known: {', '.join(names)})")
                if section == "inputs" and not isinstance(value, InputPin):
                    raise PinMapError(key, f"expected an InputPin, not {value!r}")
                spec = value.pin if isinstance(value, InputPin) else value
                try:
                    gpio = gpio_name(spec)
                except ValueError as e:
                    raise PinMapError(key, str(e)) from None
                if gpio in used:
                    raise PinMapError(key, f"pin {gpio} is used twice (also {used[gpio]})")
                used[gpio] = key
        # Frozen copies: a map handed around must not change under the devices built from it.
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))
        object.__setattr__(self, "leds", MappingProxyType(dict(self.leds)))
        object.__setattr__(self, "_used", MappingProxyType(used))

    def owner(self, pin: str | int) -> str | None:
        """Which entry uses ``pin`` (``"inputs.hook"``), or None."""
        return self._used.get(gpio_name(pin))

    def merged(self, other: PinMap) -> PinMap:
        """This map with ``other``'s inputs, LEDs and keypad added (checked again)."""
        return PinMap({**self.inputs, **other.inputs}, {**self.leds, **other.leds},
                      self.pwm_leds, other.keypad or self.keypad)


# The default wiring (hardware/README.md draws it; a test checks the two agree). Every pin is
# free of the Pi's buses (I2C, SPI, UART, PCM), so HATs and an I2S amplifier stay possible.
# The speaker button (handsfree) is the exception: every other pin off the buses was taken, so
# it has GPIO21, PCM's data out; an I2S amplifier needs that pin (move the button then), and
# the speaker LED has no pin by default (give it one the build leaves free, in [pins.leds]).
# So do the hold, swap, transfer and conference buttons and the hold LED, and the voicemail
# button and LED (a build without the keypad or the desk keys has pins for them).
# Every input is a contact to ground with the internal pull-up, active low. The hook switch is
# a microswitch pressed by the resting handset, wired through its normally-closed contact:
# lifting the handset closes it (low = off hook), and a broken wire reads as on the hook.
DEFAULT_PINS = PinMap(
    inputs={
        "hook": InputPin(17),
        "accept": InputPin(27),
        "reject": InputPin(22),
        "ignore": InputPin(23),
        "mute": InputPin(24),
        "volume_up": InputPin(5),
        "volume_down": InputPin(6),
        "redial": InputPin(16),
        "dnd": InputPin(26),
        "speaker": InputPin(21),
    },
    leds={"ring": 12, "call": 13, "mute": 25, "warning": 4},
)

# An optional 12-key keypad, one button per key to ground, on the pins of the buses Raspberry
# Pi OS leaves off by default (I2C1, SPI0, UART0, PCM): use ``DEFAULT_PINS.merged(KEYPAD_PINS)``.
KEYPAD_PINS = PinMap(
    inputs={
        "key_1": InputPin(2), "key_2": InputPin(3), "key_3": InputPin(7),
        "key_4": InputPin(8), "key_5": InputPin(9), "key_6": InputPin(10),
        "key_7": InputPin(11), "key_8": InputPin(14), "key_9": InputPin(15),
        "key_star": InputPin(18), "key_0": InputPin(19), "key_hash": InputPin(20),
    },
    leds={},
)

# The desk keys and LEDs (optional): a missed-calls key, two speed-dial keys, and the
# do-not-disturb and missed-calls LEDs, on the pins of I2C1 and PCM that the matrix keypad
# below and the speaker button (GPIO21) leave free (not the twelve-button keypad's, nor an I2S
# sound card's): use ``DEFAULT_PINS.merged(KEYPAD_MATRIX_PINS).merged(DESK_PINS)``. More speed
# keys (speed_3 .. speed_9) go on pins of your choice in ``[inputs]``.
DESK_PINS = PinMap(
    inputs={"missed": InputPin(2), "speed_1": InputPin(3), "speed_2": InputPin(20)},
    leds={"dnd": 18, "missed": 19},
)

# Or a 4x3 matrix keypad on seven of those pins: rows driven, columns read.
KEYPAD_MATRIX_PINS = PinMap(
    inputs={}, leds={},
    keypad=KeypadMatrix(rows=(7, 8, 9, 10), cols=(11, 14, 15)),
)


def mock_factory() -> Any:
    """A gpiozero mock pin factory whose pins can do PWM (so LEDs can pulse): the panel with no
    GPIO (tests, the terminal panel). Drive an input with ``factory.pin(17).drive_low()``."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    return MockFactory(pin_class=MockPWMPin)
