"""A tiny stand-in for the panel (panel/pins, panel/inputs, panel/leds, appliance/display),
written to the agreed interfaces, used only while the PANEL branch is not merged.

``install_if_missing()`` registers these modules under their real names when the real ones
cannot be imported, so the appliance code and its tests run either way; once the panel lands,
the real modules are found and nothing here is used.
"""

from __future__ import annotations

import asyncio
import enum
import importlib.util
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class InputPin:
    pin: str | int
    pull_up: bool = True
    active_low: bool = True


@dataclass(frozen=True)
class PinMap:
    inputs: Mapping[str, InputPin]
    leds: Mapping[str, str | int]
    pwm_leds: bool = True


DEFAULT_PINS = PinMap(
    inputs={"hook": InputPin(17), "accept": InputPin(27), "reject": InputPin(22),
            "ignore": InputPin(23), "mute": InputPin(24)},
    leds={"ring": 5, "call": 6, "mute": 13, "warning": 19},
)


class PanelEvent(enum.StrEnum):
    OFF_HOOK = "off_hook"
    ON_HOOK = "on_hook"
    ACCEPT = "accept"
    REJECT = "reject"
    IGNORE = "ignore"
    MUTE = "mute"
    VOLUME_UP = "volume_up"
    VOLUME_DOWN = "volume_down"
    REDIAL = "redial"
    DND = "dnd"
    DIGIT = "digit"


@dataclass(frozen=True)
class PanelInput:
    event: PanelEvent
    digit: str | None = None


_BUTTON_EVENTS = {"accept": PanelEvent.ACCEPT, "reject": PanelEvent.REJECT,
                  "ignore": PanelEvent.IGNORE, "mute": PanelEvent.MUTE,
                  "volume_up": PanelEvent.VOLUME_UP, "volume_down": PanelEvent.VOLUME_DOWN,
                  "redial": PanelEvent.REDIAL, "dnd": PanelEvent.DND}
_KEYS = {f"key_{d}": d for d in "0123456789"} | {"key_star": "*", "key_hash": "#"}


class Inputs:
    """gpiozero Buttons -> PanelInput on the loop (no debounce: the fake's only shortcut)."""

    def __init__(self, pins: PinMap, on_input: Callable[[PanelInput], None], *,
                 loop: asyncio.AbstractEventLoop, debounce: float = 0.03,
                 pin_factory=None) -> None:
        from gpiozero import Button

        self._buttons = []
        for name, spec in pins.inputs.items():
            button = Button(spec.pin, pull_up=spec.pull_up if spec.pull_up else None,
                            active_state=None if spec.pull_up else not spec.active_low,
                            pin_factory=pin_factory)
            if name == "hook":
                self._hook = button
                pressed, released = PanelInput(PanelEvent.OFF_HOOK), PanelInput(
                    PanelEvent.ON_HOOK)
                button.when_pressed = lambda _b, i=pressed: loop.call_soon_threadsafe(
                    on_input, i)
                button.when_released = lambda _b, i=released: loop.call_soon_threadsafe(
                    on_input, i)
            else:
                if name in _BUTTON_EVENTS:
                    item = PanelInput(_BUTTON_EVENTS[name])
                else:
                    item = PanelInput(PanelEvent.DIGIT, _KEYS[name])
                button.when_pressed = lambda _b, i=item: loop.call_soon_threadsafe(on_input, i)
            self._buttons.append(button)

    @property
    def off_hook(self) -> bool:
        hook = getattr(self, "_hook", None)
        return bool(hook is not None and hook.is_pressed)

    def close(self) -> None:
        for button in self._buttons:
            button.close()
        self._buttons = []


class Pattern(enum.StrEnum):
    OFF = "off"
    ON = "on"
    BLINK_FAST = "blink_fast"
    BLINK_SLOW = "blink_slow"
    PULSE = "pulse"


class Leds:
    def __init__(self, pins: PinMap, *, pin_factory=None) -> None:
        from gpiozero import LED

        self._leds = {name: LED(pin, pin_factory=pin_factory) for name, pin in pins.leds.items()}
        self.shown: dict[str, Pattern] = {}

    def show(self, patterns: Mapping[str, Pattern]) -> None:
        for name, led in self._leds.items():
            pattern = patterns.get(name, Pattern.OFF)
            if self.shown.get(name) == pattern:
                continue
            self.shown[name] = pattern
            if pattern is Pattern.OFF:
                led.off()
            elif pattern is Pattern.ON:
                led.on()
            else:
                led.blink(on_time=0.1, off_time=0.1)

    def close(self) -> None:
        for led in self._leds.values():
            led.off()
            led.close()
        self._leds = {}


@dataclass(frozen=True)
class Display:
    leds: Mapping[str, Pattern]
    ring: bool
    alert: str | None


def display(state: str, muted: bool, warnings: frozenset[str]) -> Display:
    leds: dict[str, Pattern] = {}
    if state == "ringing":
        leds["ring"] = Pattern.BLINK_FAST
    if state in ("talking", "calling"):
        leds["call"] = Pattern.ON
    if state == "reconnecting":
        leds["call"] = Pattern.PULSE
    if muted and state in ("talking", "reconnecting"):
        leds["mute"] = Pattern.ON
    if warnings and state in ("talking", "reconnecting"):
        leds["warning"] = (Pattern.BLINK_FAST if "audio-device-lost" in warnings
                           else Pattern.ON)
    alert = ("reconnecting" if state == "reconnecting"
             else "warning" if warnings and state == "talking" else None)
    return Display(leds=leds, ring=state == "ringing", alert=alert)


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


def _missing(name: str) -> bool:
    if name in sys.modules:
        return False
    try:
        return importlib.util.find_spec(name) is None
    except (ModuleNotFoundError, ValueError):
        return True


def install_if_missing() -> None:
    """Register the fakes under the real module names, for each real module that is absent."""
    if _missing("piphone.panel"):
        package = _module("piphone.panel", __path__=[])
        sys.modules["piphone.panel"] = package
        import piphone

        piphone.panel = package  # type: ignore[attr-defined]
    fakes = {
        "piphone.panel.pins": dict(InputPin=InputPin, PinMap=PinMap, DEFAULT_PINS=DEFAULT_PINS),
        "piphone.panel.inputs": dict(PanelEvent=PanelEvent, PanelInput=PanelInput,
                                     Inputs=Inputs),
        "piphone.panel.leds": dict(Pattern=Pattern, Leds=Leds),
        "piphone.appliance.display": dict(Display=Display, display=display),
    }
    for name, attrs in fakes.items():
        if name in sys.modules or not _missing(name):
            continue
        module = _module(name, **attrs)
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        setattr(importlib.import_module(parent), child, module)
