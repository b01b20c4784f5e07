"""Hook switch, buttons and keypad -> debounced :class:`PanelInput` events on the event loop.

gpiozero calls back on its own threads (on mock pins: on whatever thread drives the pin); each
edge crosses to the loop through ``loop.call_soon_threadsafe`` and everything after that runs on
the loop, so there are no locks.

Debounce is ours, not gpiozero's ``bounce_time``: mock pins ignore it, and lgpio's glitch filter
delays every edge by its full width. We act on the *first* edge that leaves the settled state
(a lifted handset must answer within a few milliseconds) and then ignore the pin for
``debounce`` seconds; when that lock-out ends the pin's latest level is taken as settled, so a
press or release that happened inside the window is not lost. A press therefore acts exactly
once however much its contacts chatter, as long as the chatter is shorter than ``debounce``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from .keypad import MatrixScanner
from .pins import BUTTON_NAMES, KEY_DIGITS, SPEED_KEYS, InputPin, PinMap, PinMapError

log = logging.getLogger(__name__)


class PanelEvent(enum.StrEnum):
    OFF_HOOK = enum.auto()
    ON_HOOK = enum.auto()
    ACCEPT = enum.auto()
    REJECT = enum.auto()
    IGNORE = enum.auto()
    MUTE = enum.auto()
    VOLUME_UP = enum.auto()
    VOLUME_DOWN = enum.auto()
    REDIAL = enum.auto()
    DND = enum.auto()
    SPEAKER = enum.auto()
    HOLD = enum.auto()
    SWAP = enum.auto()
    TRANSFER = enum.auto()
    CONFERENCE = enum.auto()
    DIGIT = enum.auto()
    MISSED = enum.auto()  # the missed-calls key
    SPEED = enum.auto()  # a speed-dial key; ``digit`` is its number ("1".."9")
    VOICEMAIL = enum.auto()  # the voicemail key: play the messages


@dataclass(frozen=True)
class PanelInput:
    event: PanelEvent
    digit: str | None = None  # "0".."9", "*", "#" for DIGIT; "1".."9" for SPEED


# What pressing each input means (the hook is handled apart: it reports both directions).
_PRESS: dict[str, PanelInput] = {name: PanelInput(PanelEvent(name)) for name in BUTTON_NAMES}
_PRESS |= {name: PanelInput(PanelEvent.DIGIT, digit) for name, digit in KEY_DIGITS.items()}
_PRESS |= {name: PanelInput(PanelEvent.SPEED, number) for name, number in SPEED_KEYS.items()}


class _Debounced:
    """One input's settled state and lock-out timer (loop thread only)."""

    __slots__ = ("button", "invert", "settled", "level", "lockout")

    def __init__(self, button=None, invert: bool = False) -> None:
        self.button = button  # None for a key of the matrix keypad (the scanner reads it)
        self.invert = invert  # gpiozero's "active" means the opposite of ours
        self.settled = self.level = self.read()
        self.lockout: asyncio.TimerHandle | None = None

    def read(self) -> bool:
        if self.button is None:
            return False
        return bool(self.button.is_active) != self.invert


class Inputs:
    """The panel's switches as :class:`PanelInput` events, delivered to ``on_input`` on ``loop``.

    A button (or key) gives its event once when pressed; the hook gives ``OFF_HOOK`` when the
    handset is lifted and ``ON_HOOK`` when it is put back. An input already active at start
    gives no event (``off_hook`` tells the hook's position).
    """

    def __init__(self, pins: PinMap, on_input: Callable[[PanelInput], None], *,
                 loop: asyncio.AbstractEventLoop, debounce: float = 0.03,
                 pin_factory=None) -> None:
        if not debounce > 0:
            raise ValueError(f"debounce must be > 0 seconds, not {debounce!r}")
        # DigitalInputDevice, not Button: a Button starts a hold-polling thread per pin that
        # we do not use (and that makes close() take 0.1 s per button).
        from gpiozero import DigitalInputDevice, GPIOZeroError  # hardware: here, not at import

        self._loop = loop
        self._on_input = on_input
        self._debounce = debounce
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._inputs: dict[str, _Debounced] = {}
        self._keypad: MatrixScanner | None = None
        try:
            for name, spec in pins.inputs.items():
                try:
                    button = DigitalInputDevice(spec.pin, pull_up=spec.pull_up,
                                                pin_factory=pin_factory)
                except GPIOZeroError as e:
                    raise PinMapError(f"inputs.{name}", f"pin {spec.pin!r}: {e}") from e
                state = self._inputs[name] = _Debounced(button, invert=_inverted(spec))
                button.when_activated = partial(self._edge, name, not state.invert)
                button.when_deactivated = partial(self._edge, name, state.invert)
                # An edge between the first read and the callbacks would be lost: read again.
                self._edge(name, state.read())
            if pins.keypad is not None:  # its keys share the buttons' debounce
                for name in pins.keypad.keys().values():
                    self._inputs[name] = _Debounced()
                self._keypad = MatrixScanner(pins.keypad, self._on_edge, loop=loop,
                                             pin_factory=pin_factory)
        except BaseException:
            self.close()
            raise

    @property
    def off_hook(self) -> bool:
        """The handset is lifted (settled state); False when there is no hook switch."""
        hook = self._inputs.get("hook")
        return hook is not None and hook.settled

    async def settled(self) -> None:
        """Wait until every input is out of its lock-out (edges already handed over included)."""
        await asyncio.sleep(0)  # let edges queued by call_soon_threadsafe run first
        await self._idle.wait()

    def close(self) -> None:
        """Release the pins; later edges are ignored. Idempotent."""
        self._closed = True
        for state in self._inputs.values():
            if state.lockout is not None:
                state.lockout.cancel()
                state.lockout = None
            if state.button is not None:
                state.button.close()
        self._inputs.clear()
        if self._keypad is not None:
            self._keypad.close()
            self._keypad = None
        self._idle.set()

    # -- gpiozero's threads ----------------------------------------------------------------

    def _edge(self, name: str, active: bool) -> None:
        try:
            self._loop.call_soon_threadsafe(self._on_edge, name, active)
        except RuntimeError:  # the loop is closed: the service is shutting down
            pass

    # -- the loop --------------------------------------------------------------------------

    def _on_edge(self, name: str, active: bool) -> None:
        state = self._inputs.get(name)
        if state is None or self._closed:
            return
        state.level = active
        if state.lockout is None and active != state.settled:
            self._settle(name, state, active)

    def _end_lockout(self, name: str, state: _Debounced) -> None:
        state.lockout = None
        if state.level != state.settled:  # moved during the window and stayed there
            self._settle(name, state, state.level)
        elif all(s.lockout is None for s in self._inputs.values()):
            self._idle.set()

    def _settle(self, name: str, state: _Debounced, active: bool) -> None:
        state.settled = active
        state.lockout = self._loop.call_later(self._debounce, self._end_lockout, name, state)
        self._idle.clear()
        if name == "hook":
            self._deliver(PanelInput(PanelEvent.OFF_HOOK if active else PanelEvent.ON_HOOK))
        elif active:
            self._deliver(_PRESS[name])

    def _deliver(self, event: PanelInput) -> None:
        log.debug("panel: %s%s", event.event, f" {event.digit}" if event.digit else "")
        try:
            self._on_input(event)
        except Exception:  # a broken handler must not stop the panel
            log.exception("panel input handler failed on %s", event)


def _inverted(spec: InputPin) -> bool:
    # gpiozero's input is "active" when the pin is pulled away from its pull resistor (low
    # with the pull-up). Our "active" level is set by active_low on its own, so a switch that
    # opens when active (the hook: pull-up, active high) reads as gpiozero's "inactive".
    return spec.pull_up != spec.active_low
