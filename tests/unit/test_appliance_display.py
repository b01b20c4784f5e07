"""appliance/display.py: the whole front panel as a table over every phone state."""

from __future__ import annotations

import itertools

import pytest

from piphone.appliance.display import (
    DEFAULT_PATTERNS,
    STATES,
    Display,
    DisplayPatterns,
    display,
)
from piphone.panel.leds import Pattern

OFF, ON, FAST, SLOW, PULSE = (Pattern.OFF, Pattern.ON, Pattern.BLINK_FAST,
                              Pattern.BLINK_SLOW, Pattern.PULSE)
NONE: frozenset[str] = frozenset()
JITTER = frozenset({"high-jitter"})
LOST = frozenset({"audio-device-lost", "high-packet-loss"})

# state, muted, warnings -> ring LED, call LED, mute LED, warning LED, ringer, alert
TABLE = [
    ("idle",         False, NONE,   OFF,  OFF,   OFF, OFF,  False, None),
    ("idle",         True,  LOST,   OFF,  OFF,   OFF, OFF,  False, None),
    ("dialing",      False, NONE,   OFF,  OFF,   OFF, OFF,  False, None),
    ("dialing",      False, LOST,   OFF,  OFF,   OFF, FAST, False, "warning"),
    ("ringing",      False, NONE,   FAST, OFF,   OFF, OFF,  True,  None),
    ("ringing",      False, JITTER, FAST, OFF,   OFF, ON,   True,  "warning"),
    ("calling",      False, NONE,   OFF,  ON,    OFF, OFF,  False, None),
    ("calling",      True,  NONE,   OFF,  ON,    ON,  OFF,  False, None),
    ("talking",      False, NONE,   OFF,  ON,    OFF, OFF,  False, None),
    ("talking",      True,  NONE,   OFF,  ON,    ON,  OFF,  False, None),
    ("talking",      False, JITTER, OFF,  ON,    OFF, ON,   False, "warning"),
    ("talking",      True,  LOST,   OFF,  ON,    ON,  FAST, False, "warning"),
    ("reconnecting", False, NONE,   OFF,  PULSE, OFF, OFF,  False, "reconnecting"),
    ("reconnecting", True,  JITTER, OFF,  PULSE, ON,  ON,   False, "reconnecting"),
    ("held",         False, NONE,   OFF,  SLOW,  OFF, OFF,  False, None),
    ("held",         True,  JITTER, OFF,  SLOW,  ON,  ON,   False, "warning"),
    ("recall",       False, NONE,   FAST, SLOW,  OFF, OFF,  True,  None),
]
HOLDING = ("held", "recall")  # the phone's own call is on hold: the hold LED shows it


@pytest.mark.parametrize("state, muted, warnings, ring, call, mute, warning, ringer, alert",
                         TABLE)
def test_the_table(state, muted, warnings, ring, call, mute, warning, ringer, alert):
    shown = display(state, muted, warnings)
    leds = {"ring": ring, "call": call, "mute": mute, "warning": warning,
            "hold": SLOW if state in HOLDING else OFF}
    assert dict(shown.leds) == {name: p for name, p in leds.items() if p is not OFF}
    assert (shown.ring, shown.alert) == (ringer, alert)


def test_the_table_covers_every_state():
    assert {row[0] for row in TABLE} == set(STATES)


def test_a_second_call_on_hold_shows_on_the_hold_led_only():
    shown = display("talking", False, NONE, held=True)
    assert dict(shown.leds) == {"call": ON, "hold": SLOW} and not shown.ring
    assert display("idle", False, NONE, held=True) == Display({}, False, None)
    mine = DisplayPatterns(held="on")
    assert dict(display("held", False, NONE, patterns=mine).leds) == {"call": ON, "hold": ON}


@pytest.mark.parametrize("state, muted, warnings, held", list(itertools.product(
    STATES, (False, True), (NONE, JITTER, LOST), (False, True))))
def test_invariants_over_every_combination(state, muted, warnings, held):
    shown = display(state, muted, warnings, held=held)
    assert isinstance(shown, Display)
    assert set(shown.leds) <= {"ring", "call", "mute", "warning", "hold"}
    assert all(isinstance(p, Pattern) and p is not OFF for p in shown.leds.values())
    assert shown.ring == (state in ("ringing", "recall")) == ("ring" in shown.leds)
    if state != "idle":
        assert ("hold" in shown.leds) == (held or state in HOLDING)
    if state == "idle":
        assert shown == Display({}, False, None)
    else:
        assert ("mute" in shown.leds) == muted
        assert ("warning" in shown.leds) == bool(warnings)
    assert shown.alert in (None, "warning", "reconnecting")
    with pytest.raises(TypeError):
        shown.leds["ring"] = ON  # type: ignore[index]


def test_patterns_are_configurable():
    mine = DisplayPatterns(ringing="blink_slow", reconnecting=Pattern.BLINK_SLOW, muted=OFF)
    assert mine.ringing is SLOW
    assert dict(display("ringing", False, NONE, patterns=mine).leds) == {"ring": SLOW}
    assert dict(display("reconnecting", True, NONE, patterns=mine).leds) == {"call": SLOW}
    assert display("talking", False, NONE) == display("talking", False, NONE,
                                                      patterns=DEFAULT_PATTERNS)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown phone state 'on-hold'"):
        display("on-hold", False, NONE)
    with pytest.raises(ValueError, match="display pattern ringing: unknown pattern 'strobe'"):
        DisplayPatterns(ringing="strobe")  # type: ignore[arg-type]
