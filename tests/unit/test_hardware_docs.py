"""hardware/README.md agrees with the code: the pin tables and the header drawing are the
generated ones, and (read back independently) name exactly the pins of DEFAULT_PINS."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from piphone.panel import wiring
from piphone.panel.pins import (
    DEFAULT_PINS,
    KEYPAD_MATRIX_PINS,
    KEYPAD_PINS,
    PinMap,
    bcm,
    header_pin,
)

README = Path(__file__).parents[2] / "hardware" / "README.md"
FIX = "python -m piphone.panel.wiring hardware/README.md"


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text()


@pytest.mark.parametrize("block", list(wiring.blocks()))
def test_generated_blocks_are_current(readme, block):
    assert wiring.marked(readme, block) == wiring.blocks()[block], f"run {FIX}"


def table_rows(text: str) -> dict[int, tuple[str, int]]:
    """BCM number -> (function, header pin) from a Markdown pin table."""
    rows = {}
    for line in text.splitlines():
        if m := re.fullmatch(r"\| ([^|]+) \| GPIO(\d+) \| (\d+) \| [^|]+ \|", line):
            rows[int(m[2])] = (m[1], int(m[3]))
    return rows


@pytest.mark.parametrize("block, pins", [("pin-table", DEFAULT_PINS),
                                         ("keypad-table", KEYPAD_PINS)])
def test_tables_name_exactly_the_maps_pins(readme, block, pins: PinMap):
    rows = table_rows(wiring.marked(readme, block))
    want = {bcm(p.pin): (name, "input") for name, p in pins.inputs.items()}
    want |= {bcm(p): (name, "led") for name, p in pins.leds.items()}
    assert set(rows) == set(want)
    for number, (function, header) in rows.items():
        assert header == header_pin(number)
        name, kind = want[number]
        words = {"dnd": "do-not-disturb", "key_star": "key *", "key_hash": "key #"}
        expected = words.get(name, name.replace("key_", "key ").replace("_", " "))
        assert function.startswith(expected), (function, name)
        assert function.endswith(" LED") == (kind == "led"), function


def test_matrix_table_names_its_rows_and_columns(readme):
    matrix = KEYPAD_MATRIX_PINS.keypad
    rows = table_rows(wiring.marked(readme, "keypad-matrix-table"))
    pins = [bcm(p) for p in matrix.rows + matrix.cols]
    assert list(rows) == pins
    assert all(header == header_pin(n) for n, (_, header) in rows.items())
    assert rows[bcm(matrix.rows[3])][0] == "keypad row 4 (* 0 #)"
    assert rows[bcm(matrix.cols[1])][0] == "keypad column 2 (2 5 8 0)"


def test_diagram_puts_each_function_on_its_header_pin(readme):
    diagram = wiring.marked(readme, "header-diagram")
    full = DEFAULT_PINS.merged(KEYPAD_PINS)
    for function, number, header, _ in wiring.rows(full):
        line = next(ln for ln in diagram.splitlines() if f"({header:2})" in ln)
        left = header % 2 == 1
        side = line.split(" o o ")[0 if left else 1]
        assert f"GPIO{number}" in side and function in side, line


def test_readme_documents_the_hook_wiring_the_default_map_uses(readme):
    hook = DEFAULT_PINS.inputs["hook"]
    assert hook.pull_up and hook.active_low
    assert "Wire COM to GND and **NC** to GPIO17" in readme
    assert "330 Ω" in readme and all(f"{n} LED" in readme for n in DEFAULT_PINS.leds)


def test_update_rewrites_a_stale_block_and_main_prints(tmp_path, capsys):
    stale = README.read_text().replace("| hook switch | GPIO17 | 11 |", "| hook | GPIO4 | 7 |")
    path = tmp_path / "README.md"
    path.write_text(stale)
    assert wiring.main([str(path)]) == 0
    assert path.read_text() == README.read_text()
    assert wiring.main([]) == 0
    assert "<!-- pin-table -->" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no <!-- pin-table:begin/end --> block"):
        wiring.update("nothing here")
