"""A matrix keypad: which keys are down, read by scanning rows and columns.

At rest every row is driven low and the columns wait, pulled up, for an edge: a key pressed
pulls its column low. That edge (on a gpiozero thread) wakes the scanner on the loop, which
then drives one row low at a time, reads the columns, and polls every ``period`` while any key
is down; when all are up it goes back to waiting. So an idle keypad costs nothing, and the
edges the scan itself causes never re-trigger it. gpiozero has no matrix keypad device, hence
this module.

:class:`MatrixSim` plays the keypad on gpiozero's mock pins (tests, the terminal panel).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .pins import KeypadMatrix, PinMapError

log = logging.getLogger(__name__)


class MatrixScanner:
    """Reports each key of ``matrix`` going down or up as ``on_level(name, down)`` on ``loop``
    (names as in a pin map: ``"key_5"``). Debouncing is the caller's."""

    def __init__(self, matrix: KeypadMatrix, on_level: Callable[[str, bool], None], *,
                 loop: asyncio.AbstractEventLoop, period: float = 0.01,
                 pin_factory=None) -> None:
        from gpiozero import DigitalInputDevice, DigitalOutputDevice, GPIOZeroError

        self._keys = matrix.keys()
        self._on_level = on_level
        self._loop = loop
        self._period = period
        self._rows: list = []
        self._cols: list = []
        self._down: frozenset[str] = frozenset()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        try:
            for i, pin in enumerate(matrix.rows, 1):
                try:  # active = driven low; all rows start active, waiting for a key
                    self._rows.append(DigitalOutputDevice(
                        pin, active_high=False, initial_value=True, pin_factory=pin_factory))
                except GPIOZeroError as e:
                    raise PinMapError(f"keypad.rows.{i}", f"pin {pin!r}: {e}") from e
            for i, pin in enumerate(matrix.cols, 1):
                try:
                    col = DigitalInputDevice(pin, pull_up=True, pin_factory=pin_factory)
                except GPIOZeroError as e:
                    raise PinMapError(f"keypad.cols.{i}", f"pin {pin!r}: {e}") from e
                col.when_activated = self._wake
                self._cols.append(col)
        except BaseException:
            self.close()
            raise
        self._wake()  # a key held at start is found by a first scan

    @property
    def down(self) -> frozenset[str]:
        """The keys down at the last scan."""
        return self._down

    def close(self) -> None:
        """Stop scanning and release the pins. Idempotent."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for device in self._cols + self._rows:
            device.close()
        self._cols.clear()
        self._rows.clear()

    # gpiozero's thread
    def _wake(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._start)
        except RuntimeError:  # the loop is closed: shutting down
            pass

    # the loop
    def _start(self) -> None:
        if self._timer is None and not self._closed:
            self._scan()

    def _scan(self) -> None:
        self._timer = None
        if self._closed:
            return
        down = set()
        for r, row in enumerate(self._rows):
            for other in self._rows:
                other.off()  # high: not selected
            row.on()
            for c, col in enumerate(self._cols):
                if col.is_active and (r, c) in self._keys:
                    down.add(self._keys[(r, c)])
        for row in self._rows:
            row.on()  # all low again: the next press wakes us
        changed = self._down.symmetric_difference(down)
        self._down = frozenset(down)
        for name in sorted(changed):
            try:
                self._on_level(name, name in down)
            except Exception:
                log.exception("keypad handler failed on %s", name)
        if down:  # poll while a key is down; edges are ignored meanwhile
            self._timer = self._loop.call_later(self._period, self._scan)


class MatrixSim:
    """Fingers on a matrix keypad built of gpiozero mock pins: :meth:`press` and
    :meth:`release` keys, and the columns follow the rows as real wiring would.

    Attach it to the factory before or after the scanner is built; call from one thread."""

    def __init__(self, matrix: KeypadMatrix, factory) -> None:
        self._factory = factory
        self._matrix = matrix
        self._where = {name: rc for rc, name in matrix.keys().items()}
        self._pressed: set[tuple[int, int]] = set()
        for pin in matrix.rows:
            row = factory.pin(pin)
            change = row._change_state  # MockPin's one place where a level changes

            def changed(value, change=change):
                moved = change(value)
                if moved:
                    self._update()
                return moved
            row._change_state = changed

    def press(self, name: str) -> None:
        self._pressed.add(self._where[name])
        self._update()

    def release(self, name: str) -> None:
        self._pressed.discard(self._where[name])
        self._update()

    def _update(self) -> None:
        rows = [self._factory.pin(p) for p in self._matrix.rows]
        for c, pin in enumerate(self._matrix.cols):
            col = self._factory.pin(pin)
            if col.function != "input":
                continue
            low = any(not rows[r].state for r, cc in self._pressed
                      if cc == c and rows[r].function == "output")
            col.drive_low() if low else col.drive_high()
