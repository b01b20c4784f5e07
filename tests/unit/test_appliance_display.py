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
    ("transfer",     False, NONE,   OFF,  SLOW,  OFF, OFF,  False, None),
    ("voicemail",    False, NONE,   OFF,  OFF,   OFF, OFF,  False, None),
]
# the phone's own call is on hold (transfer: while the number is keyed): the hold LED shows it
HOLDING = ("held", "recall", "transfer")


@pytest.mark.parametrize("state, muted, warnings, ring, call, mute, warning, ringer, alert",
                         TABLE)
def test_the_table(state, muted, warnings, ring, call, mute, warning, ringer, alert):
    shown = display(state, muted, warnings)
    leds = {"ring": ring, "call": call, "mute": mute, "warning": warning,
            "hold": SLOW if state in HOLDING else OFF,
            "voicemail": ON if state == "voicemail" else OFF}  # the messages play
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
    assert set(shown.leds) <= {"ring", "call", "mute", "warning", "hold", "voicemail"}
    assert ("voicemail" in shown.leds) == (state == "voicemail")
    assert all(isinstance(p, Pattern) and p is not OFF for p in shown.leds.values())
    assert shown.ring == (state in ("ringing", "recall")) == ("ring" in shown.leds)
    if state != "idle":
        assert ("hold" in shown.leds) == (held or state in HOLDING)
    if state == "idle":
        assert shown == Display({}, False, None)  # registered, nothing waiting: dark
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


# --- the idle panel's flags: offline, do-not-disturb, missed calls --------------------------
# state, online, dnd, missed -> LEDs
FLAGS = [
    ("idle",    True,  False, False, {}),
    ("idle",    False, False, False, {"warning": SLOW}),
    ("idle",    True,  True,  False, {"dnd": ON}),
    ("idle",    True,  False, True,  {"missed": SLOW}),
    ("idle",    False, True,  True,  {"warning": SLOW, "dnd": ON, "missed": SLOW}),
    ("dialing", False, False, False, {"warning": SLOW}),
    ("ringing", True,  True,  True,  {"ring": FAST, "dnd": ON, "missed": SLOW}),
    ("talking", False, False, False, {"call": ON}),  # a call in progress: its own cues
    ("held",    False, True,  True,  {"call": SLOW, "hold": SLOW, "dnd": ON, "missed": SLOW}),
    ("recall",  True,  True,  False, {"ring": FAST, "call": SLOW, "hold": SLOW, "dnd": ON}),
]


@pytest.mark.parametrize("state, online, dnd, missed, leds", FLAGS)
def test_the_idle_flags(state, online, dnd, missed, leds):
    shown = display(state, False, NONE, online=online, dnd=dnd, missed=missed)
    assert dict(shown.leds) == leds and shown.alert is None


@pytest.mark.parametrize("state", STATES)
def test_offline_never_looks_like_a_working_idle_phone(state):
    working = display(state, False, NONE)
    offline = display(state, False, NONE, online=False)
    if state in ("idle", "dialing"):
        assert offline != working
    assert display(state, False, JITTER, online=False).leds.get("warning") in (None, ON, SLOW)


def test_a_call_warning_wins_over_the_offline_cue_on_the_warning_led():
    shown = display("dialing", False, LOST, online=False)
    assert shown.leds["warning"] is FAST and shown.alert == "warning"


def test_the_idle_cues_are_configurable():
    mine = DisplayPatterns(offline="pulse", dnd="blink_slow", missed=OFF)
    shown = display("idle", True, NONE, online=False, dnd=True, missed=True, patterns=mine)
    assert dict(shown.leds) == {"warning": PULSE, "dnd": SLOW}


def test_the_message_waiting_cue_shows_in_every_state_and_is_configurable():
    assert dict(display("idle", False, NONE, voicemail=True).leds) == {"voicemail": SLOW}
    assert dict(display("talking", False, NONE, voicemail=True).leds) == {
        "call": ON, "voicemail": SLOW}
    assert dict(display("voicemail", False, NONE, voicemail=True).leds) == {"voicemail": ON}
    mine = DisplayPatterns(voicemail="pulse", listening="blink_fast")
    assert dict(display("idle", False, NONE, voicemail=True, patterns=mine).leds) == {
        "voicemail": PULSE}
    assert dict(display("voicemail", False, NONE, patterns=mine).leds) == {"voicemail": FAST}
    assert display("idle", False, NONE, voicemail=True,
                   patterns=DisplayPatterns(voicemail="off")) == Display({}, False, None)
