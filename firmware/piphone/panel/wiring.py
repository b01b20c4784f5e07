"""The wiring documentation, generated from a pin map: a table and a drawing of the header.

``hardware/README.md`` holds the output for the default map between marker comments; a test
checks it is current, and ``python -m piphone.panel.wiring hardware/README.md`` rewrites it
after a change to ``DEFAULT_PINS``.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from pathlib import Path

from .pins import (
    DEFAULT_PINS,
    DESK_PINS,
    KEY_DIGITS,
    KEYPAD_MATRIX_PINS,
    KEYPAD_PINS,
    SPEED_KEYS,
    InputPin,
    PinMap,
    bcm,
    header_pin,
)

# LED colour and series resistor: standard 5 mm LEDs (Vf about 2.0 V) from a 3.3 V pin
# through 330 ohm give (3.3 - 2.0) / 330 = 4 mA, bright indoors and far below the pin limit.
LED_PARTS = {
    "ring": ("red", 330),
    "call": ("green", 330),
    "mute": ("yellow", 330),
    "warning": ("amber", 330),
    "speaker": ("yellow-green", 330),
    "dnd": ("red", 330),
    "missed": ("yellow", 330),
    "hold": ("blue", 100),  # Vf about 3.0 V: 3 mA through 100 ohm
    "voicemail": ("red", 330),  # message waiting
}
_HEADER_PINS = 40
_RESERVED = {27: "(HAT ID EEPROM)", 28: "(HAT ID EEPROM)"}


def _input_label(name: str) -> str:
    if name == "hook":
        return "hook switch"
    if name in KEY_DIGITS:
        return f"key {KEY_DIGITS[name]}"
    if name in SPEED_KEYS:
        return f"speed dial {SPEED_KEYS[name]} button"
    return {"dnd": "do-not-disturb", "missed": "missed-calls"}.get(
        name, name.replace("_", " ")) + " button"


def _input_wiring(name: str, spec: InputPin) -> str:
    if spec.pull_up and spec.active_low:
        contact = "NC contact" if name == "hook" else "switch"
        return f"{contact} to GND (internal pull-up, low = {_active_word(name)})"
    if spec.pull_up:
        return f"switch to GND (internal pull-up, high = {_active_word(name)})"
    if spec.active_low:
        return f"switch to GND with an external pull-up (low = {_active_word(name)})"
    return f"switch to 3V3 (internal pull-down, high = {_active_word(name)})"


def _active_word(name: str) -> str:
    return "lifted" if name == "hook" else "pressed"


def rows(pins: PinMap) -> list[tuple[str, int, int, str]]:
    """(function, BCM number, header pin, how to wire it) for each entry of the map."""
    out = []
    labels = {"dnd": "do-not-disturb LED", "missed": "missed-calls LED"}
    for name, spec in pins.inputs.items():
        out.append((_input_label(name), bcm(spec.pin), header_pin(spec.pin),
                    _input_wiring(name, spec)))
    for name, pin in pins.leds.items():
        colour, ohms = LED_PARTS[name]
        out.append((labels.get(name, f"{name} LED"), bcm(pin), header_pin(pin),
                    f"{ohms} Ω to the anode of the {colour} LED, cathode to GND"))
    if (matrix := pins.keypad) is not None:
        for i, pin in enumerate(matrix.rows):
            out.append((f"keypad row {i + 1} ({' '.join(matrix.layout[i])})", bcm(pin),
                        header_pin(pin), "keypad row pin (driven low in turn)"))
        for i, pin in enumerate(matrix.cols):
            keys = " ".join(line[i] for line in matrix.layout)
            out.append((f"keypad column {i + 1} ({keys})", bcm(pin), header_pin(pin),
                        "keypad column pin (internal pull-up)"))
    return out


def pin_table(pins: PinMap) -> str:
    """A Markdown table of the map."""
    lines = ["| Function | BCM | Header pin | Wiring |", "|---|---|---|---|"]
    lines += [f"| {what} | GPIO{n} | {h} | {how} |" for what, n, h, how in rows(pins)]
    return "\n".join(lines)


def header_diagram(pins: PinMap) -> str:
    """The 40-pin header seen from above (pin 1 top left, by the SD card end), with what is
    wired to each pin."""
    used = {h: what for what, _, h, _ in rows(pins)}
    used |= {h: note for h, note in _RESERVED.items() if h not in used}
    width = max(len(w) for w in used.values())

    def name(h: int) -> str:
        from .pins import _header

        return _header().headers["J8"].pins[h].name

    lines = []
    for left in range(1, _HEADER_PINS, 2):
        right = left + 1
        lines.append(f"{used.get(left, ''):>{width}} {name(left):>6} ({left:2}) o o "
                     f"({right:2}) {name(right):<6} {used.get(right, '')}".rstrip())
    return "\n".join(lines)


_BLOCKS = {
    "pin-table": lambda: pin_table(DEFAULT_PINS),
    "keypad-table": lambda: pin_table(KEYPAD_PINS),
    "keypad-matrix-table": lambda: pin_table(KEYPAD_MATRIX_PINS),
    "desk-table": lambda: pin_table(DESK_PINS),
    "header-diagram": lambda: "```text\n" + header_diagram(DEFAULT_PINS.merged(KEYPAD_PINS))
                              + "\n```",
}


def blocks() -> dict[str, str]:
    """The generated parts of hardware/README.md by marker name."""
    return {name: make() for name, make in _BLOCKS.items()}


def marked(text: str, name: str) -> str:
    """The text between ``<!-- name:begin -->`` and ``<!-- name:end -->``."""
    match = re.search(rf"<!-- {name}:begin -->\n(.*?)\n<!-- {name}:end -->", text, re.S)
    if match is None:
        raise ValueError(f"no <!-- {name}:begin/end --> block")
    return match.group(1)


def _replaced(body: str, match: re.Match[str]) -> str:
    return match.group(1) + body + match.group(2)


def update(text: str) -> str:
    """``text`` with every generated block replaced by its current version."""
    for name, body in blocks().items():
        marked(text, name)  # raises if the markers are missing
        text = re.sub(rf"(<!-- {name}:begin -->\n).*?(\n<!-- {name}:end -->)",
                      functools.partial(_replaced, body), text, flags=re.S)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("readme", nargs="?", type=Path,
                        help="rewrite the generated blocks of this file (else print them)")
    args = parser.parse_args(argv)
    if args.readme is None:
        for name, body in blocks().items():
            print(f"<!-- {name} -->\n{body}\n")
        return 0
    args.readme.write_text(update(args.readme.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
