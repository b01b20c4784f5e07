"""The panel in a terminal, for machines without GPIO: keys press the buttons, lamps show the LEDs.

Keys drive gpiozero's *mock pins* the way a finger drives the real ones, so the real
:class:`~piphone.panel.inputs.Inputs` (debounce included) and :class:`~piphone.panel.leds.Leds`
run unchanged; the lamps read the LED pins back, so they show the real blink and pulse
patterns. Drawing uses ``rich`` (a maintained terminal library: colours, layout and live
redraw without hand-written escape codes). What else the screen shows (phone state, the call,
audio levels) is handed in by the caller as text and numbers: the panel knows nothing of calls.

``python -m piphone.panel.terminal`` runs the panel alone, with a toy owner that lights lamps.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import sys
import termios
import tty
from collections.abc import Callable, Iterator, Mapping

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .keypad import MatrixSim
from .pins import DEFAULT_PINS, KEY_DIGITS, KEYPAD_PINS, PinMap

log = logging.getLogger(__name__)

# key -> input name. The hook is a switch (toggles); everything else is a momentary button.
KEYS: Mapping[str, str] = {
    "h": "hook", " ": "hook",
    "a": "accept", "x": "reject", "i": "ignore", "m": "mute",
    "+": "volume_up", "=": "volume_up", "-": "volume_down",
    "r": "redial", "d": "dnd", "s": "speaker", "c": "missed",
    "j": "speed_1", "k": "speed_2", "o": "hold", "w": "swap", "t": "transfer",
    "f": "conference", "v": "voicemail",
} | {digit: name for name, digit in KEY_DIGITS.items()}
QUIT_KEYS = ("q", "\x03", "\x04")  # q, Ctrl-C, Ctrl-D
HELP = ("h/space hook  a accept  x reject  i ignore  m mute  +/- volume  r redial  "
        "d do-not-disturb  s speaker  c missed calls  j/k speed dial 1-2  o hold  w swap  "
        "t transfer  f conference  v voicemail (7 delete, # next)  0-9 * # keys  q quit")

_LAMP_RGB = {"ring": (255, 40, 40), "call": (40, 220, 60), "mute": (255, 210, 0),
             "warning": (255, 140, 0), "speaker": (150, 230, 40), "dnd": (255, 40, 40),
             "missed": (255, 210, 0), "hold": (60, 120, 255), "voicemail": (255, 40, 40)}
_DARK = (60, 60, 60)

Info = Callable[[], Mapping[str, str]]
Levels = Callable[[], Mapping[str, float]]


class TerminalPanel:
    """Presses the buttons of ``pins`` on a gpiozero mock ``factory`` and draws its LEDs.

    Build :class:`Inputs` and :class:`Leds` on the same factory; this class only plays the
    finger and the eye. Like one finger, it presses one button at a time, in the order the
    keys came: each is held down ``hold`` seconds and the next follows ``gap`` seconds after
    its release. Both must exceed the panel's debounce, or the debounce would rightly take
    two presses for one.
    """

    def __init__(self, pins: PinMap, factory, *, loop: asyncio.AbstractEventLoop,
                 hold: float = 0.06, gap: float = 0.06) -> None:
        self.pins = pins
        self._factory = factory
        self._loop = loop
        self._hold = hold
        self._gap = gap
        self._todo: collections.deque[str] = collections.deque()  # inputs still to press
        self._down: str | None = None  # the button held now
        self._timer: asyncio.TimerHandle | None = None  # the finger's next move
        # A matrix keypad's keys are pressed by joining row and column, not by one pin.
        self._sim = MatrixSim(pins.keypad, factory) if pins.keypad is not None else None
        self._matrix = set(pins.keypad.keys().values()) if pins.keypad is not None else set()

    # -- the finger ----------------------------------------------------------------------

    def press(self, key: str) -> str | None:
        """Act on one key: the input it presses (or, for the hook, toggles), or None if it
        is no button of this panel."""
        name = KEYS.get(key)
        if name is None or (name not in self.pins.inputs and name not in self._matrix):
            return None
        self._todo.append(name)
        if self._timer is None:
            self._next()
        return name

    def feed(self, keys: str) -> list[str | None]:
        """:meth:`press` each key of ``keys`` in turn."""
        return [self.press(k) for k in keys]

    def _next(self) -> None:
        self._timer = None
        if not self._todo:
            return
        name = self._todo.popleft()
        if name == "hook":  # a switch: it stays where it is put
            self._drive(name, not self.off_hook)
        else:
            self._down = name
            self._finger(name, True)
        self._timer = self._loop.call_later(self._hold, self._up)

    def _up(self) -> None:
        if self._down is not None:
            self._finger(self._down, False)
            self._down = None
        self._timer = self._loop.call_later(self._gap, self._next)

    @property
    def off_hook(self) -> bool:
        """Where the finger left the handset (the hook pin's level, not the debounced one)."""
        return "hook" in self.pins.inputs and self._active("hook")

    @property
    def idle(self) -> bool:
        """No key is waiting and no button is down."""
        return self._timer is None

    def close(self) -> None:
        """Let go of the button held and forget keys not pressed yet."""
        self._todo.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._down is not None:
            self._finger(self._down, False)
            self._down = None

    def _finger(self, name: str, down: bool) -> None:
        if name in self.pins.inputs:
            self._drive(name, down)
        elif self._sim is not None:
            (self._sim.press if down else self._sim.release)(name)

    def _pin(self, name: str):
        return self._factory.pin(self.pins.inputs[name].pin)

    def _active(self, name: str) -> bool:
        return bool(self._pin(name).state) != self.pins.inputs[name].active_low

    def _drive(self, name: str, active: bool) -> None:
        pin = self._pin(name)
        pin.drive_low() if active == self.pins.inputs[name].active_low else pin.drive_high()

    # -- the eye ---------------------------------------------------------------------------

    def lamps(self) -> dict[str, float]:
        """Each wired LED's brightness this instant (0.0-1.0), read from its mock pin."""
        return {name: float(self._factory.pin(pin).state or 0.0)
                for name, pin in self.pins.leds.items()}

    def render(self, info: Mapping[str, str] | None = None,
               levels: Mapping[str, float] | None = None) -> RenderableType:
        """One frame: lamps and handset, then ``info`` lines and ``levels`` bars, then keys."""
        lamps = Text("  ")
        for name, value in self.lamps().items():
            lamps.append("● " if value > 0.05 else "○ ", style=_lamp_style(name, value))
            lamps.append(f"{name}   ")
        lamps.append("handset " + ("LIFTED" if self.off_hook else "on hook"),
                     style="bold" if self.off_hook else "dim")
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", justify="right")
        table.add_column()
        for key, line in (info or {}).items():
            table.add_row(key, line)
        for key, level in (levels or {}).items():
            table.add_row(key, _bar(level))
        return Panel(Group(lamps, Text(), table, Text(), Text(HELP, style="dim")),
                     title="piphone", border_style="blue")

    async def run(self, info: Info = dict, levels: Levels = dict, *,
                  console: Console | None = None, stdin=None, fps: float = 15.0) -> None:
        """Draw live until a quit key, pressing buttons as keys arrive on ``stdin`` (a tty is
        put in cbreak mode for the duration). ``info`` and ``levels`` are asked for the text
        lines and the 0.0-1.0 bars of each frame. Log through
        ``rich.logging.RichHandler(console=console)`` with the same console, so log lines
        print above the panel instead of through it."""
        stdin = stdin or sys.stdin
        fd = stdin.fileno()
        quit_ = asyncio.Event()

        def on_keys() -> None:
            try:
                data = os.read(fd, 64).decode(errors="ignore")
            except OSError:  # the terminal went away
                data = ""
            if not data:  # end of input
                quit_.set()
            for key in data:
                if key in QUIT_KEYS:
                    quit_.set()
                else:
                    self.press(key)

        def frame() -> RenderableType:
            try:
                return self.render(info(), levels())
            except Exception as e:  # a broken provider must not take the panel down
                log.exception("terminal panel: info or levels failed")
                return self.render({"error": f"{type(e).__name__}: {e}"})

        console = console or Console()
        with _cbreak(fd), Live(frame(), console=console, auto_refresh=False,
                               transient=False) as live:
            try:
                self._loop.add_reader(fd, on_keys)
                reading = True
            except PermissionError:  # a regular file or /dev/null: show, take no keys
                log.warning("terminal panel: stdin cannot be watched; no keys")
                reading = False
            try:
                while not quit_.is_set():
                    live.update(frame(), refresh=True)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(quit_.wait(), 1 / fps)
            finally:
                if reading:
                    self._loop.remove_reader(fd)
                self.close()


def _lamp_style(name: str, value: float) -> str:
    r, g, b = _LAMP_RGB.get(name, (255, 255, 255))
    v = max(0.0, min(1.0, value))
    mix = [round(d + (c - d) * v) for c, d in zip((r, g, b), _DARK, strict=True)]
    return f"bold rgb({mix[0]},{mix[1]},{mix[2]})"


def _bar(value: float, width: int = 20) -> Text:
    v = max(0.0, min(1.0, value))
    full = round(v * width)
    return Text("█" * full, style="green") + Text("░" * (width - full), style="dim")


@contextlib.contextmanager
def _cbreak(fd: int) -> Iterator[None]:
    """Keys arrive one at a time, unechoed; the terminal is restored however we leave."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def demo(console: Console | None = None) -> None:
    """The panel alone: the hook lights the call lamp, mute toggles the mute lamp, redial
    rings the ring lamp, do-not-disturb blinks the warning lamp; keys dialled are shown."""
    from .inputs import Inputs, PanelEvent, PanelInput
    from .leds import Leds, Pattern
    from .pins import mock_factory

    loop = asyncio.get_running_loop()
    pins = DEFAULT_PINS.merged(KEYPAD_PINS)
    factory = mock_factory()
    shown: dict[str, Pattern] = {}
    state = {"last input": "-", "dialled": ""}
    leds = Leds(pins, pin_factory=factory)

    def toggle(name: str, pattern: Pattern) -> None:
        if shown.pop(name, None) is None:
            shown[name] = pattern

    def on_input(event: PanelInput) -> None:
        state["last input"] = event.event + (f" {event.digit}" if event.digit else "")
        match event.event:
            case PanelEvent.OFF_HOOK:
                shown["call"] = Pattern.ON
            case PanelEvent.ON_HOOK:
                shown.clear()
                state["dialled"] = ""
            case PanelEvent.MUTE:
                toggle("mute", Pattern.ON)
            case PanelEvent.REDIAL:
                toggle("ring", Pattern.BLINK_FAST)
            case PanelEvent.DND:
                toggle("warning", Pattern.BLINK_SLOW)
            case PanelEvent.DIGIT:
                state["dialled"] += event.digit or ""
        leds.show(shown)

    inputs = Inputs(pins, on_input, loop=loop, pin_factory=factory)
    panel = TerminalPanel(pins, factory, loop=loop)
    try:
        await panel.run(lambda: dict(state), console=console)
    finally:
        inputs.close()
        leds.close()


def main() -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(demo())
    return 0


if __name__ == "__main__":
    sys.exit(main())
