"""The panel's LEDs: each shows one :class:`Pattern` (off, on, blinking, pulsing).

Blinking and pulsing run on gpiozero's own background threads (``blink(background=True)``,
``pulse()``), so the event loop only says what each LED should show, when that changes.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from .pins import LED_NAMES, PinMap, PinMapError

log = logging.getLogger(__name__)


class Pattern(enum.StrEnum):
    OFF = enum.auto()
    ON = enum.auto()
    BLINK_FAST = enum.auto()
    BLINK_SLOW = enum.auto()
    PULSE = enum.auto()  # needs PWM; a plain LED blinks slowly instead


@dataclass(frozen=True)
class Timings:
    """The patterns' cadences, in seconds (each > 0)."""

    fast_on: float = 0.25   # BLINK_FAST: 2 flashes a second (a ringing phone)
    fast_off: float = 0.25
    slow_on: float = 1.0    # BLINK_SLOW: one flash every 2 s
    slow_off: float = 1.0
    fade_in: float = 1.0    # PULSE: a 2 s breath
    fade_out: float = 1.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"LED timing {name} must be > 0 seconds, not {value!r}")


class Leds:
    """The LEDs of a :class:`PinMap`; ``show()`` sets them all at once."""

    def __init__(self, pins: PinMap, *, pin_factory=None, timings: Timings = Timings()) -> None:
        from gpiozero import LED, PWMLED, GPIOZeroError  # hardware is touched here only

        self._pwm = pins.pwm_leds
        self._timings = timings
        self._leds: dict[str, LED | PWMLED] = {}
        self._shown: dict[str, Pattern] = {}
        cls = PWMLED if self._pwm else LED
        try:
            for name, pin in pins.leds.items():
                try:
                    self._leds[name] = cls(pin, pin_factory=pin_factory)
                except GPIOZeroError as e:
                    raise PinMapError(f"leds.{name}", f"pin {pin!r}: {e}") from e
                self._shown[name] = Pattern.OFF
        except BaseException:
            self.close()
            raise

    @property
    def shown(self) -> Mapping[str, Pattern]:
        """What each wired LED shows now."""
        return dict(self._shown)

    def value(self, name: str) -> float:
        """The LED's brightness this instant (0.0-1.0; follows a blink or pulse)."""
        return float(self._leds[name].value)

    def show(self, patterns: Mapping[str, Pattern | str]) -> None:
        """Show ``patterns`` (LED name -> pattern); LEDs not named go off. An LED keeps its
        cadence when asked for the pattern it already shows. Names of LEDs that are not wired
        are ignored; unknown names or patterns raise ValueError and change nothing."""
        wanted: dict[str, Pattern] = {}
        for name, pattern in patterns.items():
            if name not in LED_NAMES:
                raise ValueError(f"unknown LED {name!r} (known: {', '.join(LED_NAMES)})")
            try:
                wanted[name] = Pattern(pattern)
            except ValueError:
                raise ValueError(f"unknown pattern {pattern!r} for LED {name!r} "
                                 f"(known: {', '.join(Pattern)})") from None
        for name, led in self._leds.items():
            pattern = wanted.get(name, Pattern.OFF)
            if self._shown[name] != pattern:
                self._apply(led, pattern)
                self._shown[name] = pattern
                log.debug("LED %s: %s", name, pattern)

    def close(self) -> None:
        """All LEDs off and their pins released. Idempotent."""
        for led in self._leds.values():
            try:
                led.off()
            finally:
                led.close()
        self._leds.clear()
        self._shown.clear()

    def _apply(self, led, pattern: Pattern) -> None:
        t = self._timings
        if pattern is Pattern.PULSE and not self._pwm:
            pattern = Pattern.BLINK_SLOW  # the nearest a switched LED can do
        match pattern:
            case Pattern.OFF:
                led.off()
            case Pattern.ON:
                led.on()
            case Pattern.BLINK_FAST:
                led.blink(on_time=t.fast_on, off_time=t.fast_off)
            case Pattern.BLINK_SLOW:
                led.blink(on_time=t.slow_on, off_time=t.slow_off)
            case Pattern.PULSE:
                led.pulse(fade_in_time=t.fade_in, fade_out_time=t.fade_out)
