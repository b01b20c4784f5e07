"""What the phone shows: one pure function of (state, muted, active warnings, handsfree, held)
and the idle panel's flags (registered or not, do-not-disturb, missed calls waiting).

The LEDs, whether the ringer sounds, and which steady alert the speaker gives, so the whole
front panel can be read from a table and tested without hardware. Edges (a chirp when a *new*
warning is raised, the mute reminder's timer) are the phone's business, not this module's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..panel.leds import Pattern

# held: the phone's call is on hold; recall: a held call rings back (the active one ended);
# transfer: the call is on hold while the number to transfer it to is keyed;
# voicemail: the messages play in the handset (voicemail.py)
STATES = ("idle", "dialing", "ringing", "calling", "talking", "reconnecting", "held", "recall",
          "transfer", "voicemail")
HOLDING = ("held", "recall", "transfer")  # the phone's own call is on hold
DEVICE_LOST = "audio-device-lost"  # the warning that blinks rather than glows


@dataclass(frozen=True)
class Display:
    leds: Mapping[str, Pattern]  # LED name -> pattern; LEDs not named are off
    ring: bool                   # the ringer sounds
    alert: str | None            # None, "warning" or "reconnecting": the speaker's steady cue


@dataclass(frozen=True)
class DisplayPatterns:
    """Which pattern each cue uses (configurable; these are the documented defaults)."""

    ringing: Pattern = Pattern.BLINK_FAST       # ring LED while a call rings
    calling: Pattern = Pattern.ON               # call LED while an outgoing call connects
    talking: Pattern = Pattern.ON               # call LED while the call is open
    reconnecting: Pattern = Pattern.PULSE       # call LED while media is being recovered
    muted: Pattern = Pattern.ON                 # mute LED while muted
    warning: Pattern = Pattern.ON               # warning LED while a quality warning is on
    device_lost: Pattern = Pattern.BLINK_FAST   # warning LED while the headset is gone
    speaker: Pattern = Pattern.ON               # speaker LED while the handsfree device is in use
    held: Pattern = Pattern.BLINK_SLOW          # hold LED (and call LED when no call is up)
                                                # while a call is on hold
    offline: Pattern = Pattern.BLINK_SLOW       # warning LED, idle or dialing: not registered
    dnd: Pattern = Pattern.ON                   # dnd LED while do-not-disturb is on
    missed: Pattern = Pattern.BLINK_SLOW        # missed LED while missed calls are unseen
    voicemail: Pattern = Pattern.BLINK_SLOW     # voicemail LED while a message is unheard
    listening: Pattern = Pattern.ON             # voicemail LED while the messages play

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            try:
                object.__setattr__(self, name, Pattern(value))
            except ValueError:
                raise ValueError(f"display pattern {name}: unknown pattern {value!r} "
                                 f"(known: {', '.join(Pattern)})") from None


DEFAULT_PATTERNS = DisplayPatterns()
_CALL_LED = {"calling": "calling", "talking": "talking", "reconnecting": "reconnecting"}


def display(state: str, muted: bool, warnings: frozenset[str], *, handsfree: bool = False,
            held: bool = False, patterns: DisplayPatterns = DEFAULT_PATTERNS,
            online: bool = True, dnd: bool = False, missed: bool = False,
            voicemail: bool = False) -> Display:
    """The panel for a phone in ``state`` (one of :data:`STATES`), ``handsfree`` when the
    speaker and its microphone are in use, ``held`` when a second call is on hold (in the
    held and recall states the phone's own call is).

    ``online``: registered (able to take and place calls); ``dnd``: do-not-disturb is on;
    ``missed``: missed calls wait to be seen; ``voicemail``: a message is unheard (message
    waiting). Idle shows only those four: a working phone on
    its hook with nothing waiting is dark and silent whatever call flags are left over, and
    one that is not registered blinks the warning LED slowly so it never looks like that."""
    if state not in STATES:
        raise ValueError(f"unknown phone state {state!r} (known: {', '.join(STATES)})")
    leds: dict[str, Pattern] = {}
    if dnd:
        leds["dnd"] = patterns.dnd
    if missed:
        leds["missed"] = patterns.missed
    if voicemail or state == "voicemail":
        leds["voicemail"] = patterns.listening if state == "voicemail" else patterns.voicemail
    if not online and state in ("idle", "dialing"):
        leds["warning"] = patterns.offline
    if state == "idle":
        return Display(leds=MappingProxyType(_shown(leds)), ring=False, alert=None)
    if state in ("ringing", "recall"):
        leds["ring"] = patterns.ringing
    if state in _CALL_LED:
        leds["call"] = getattr(patterns, _CALL_LED[state])
    if held or state in HOLDING:
        leds["hold"] = patterns.held
        if state in HOLDING:  # a phone with no hold LED still shows it
            leds["call"] = patterns.held
    if muted:
        leds["mute"] = patterns.muted
    if handsfree:
        leds["speaker"] = patterns.speaker
    if warnings:
        leds["warning"] = patterns.device_lost if DEVICE_LOST in warnings else patterns.warning
    alert = "reconnecting" if state == "reconnecting" else "warning" if warnings else None
    return Display(leds=MappingProxyType(_shown(leds)), ring=state in ("ringing", "recall"),
                   alert=alert)


def _shown(leds: dict[str, Pattern]) -> dict[str, Pattern]:
    """Pattern.OFF from the configuration means "not shown": dropped, so the map stays
    minimal."""
    return {name: p for name, p in leds.items() if p is not Pattern.OFF}
