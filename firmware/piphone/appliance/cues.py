"""What the phone shows and sounds after each event, from the pure ``display()`` and a few
edges: the LEDs, the ringer, the call-progress tone, a chirp for a *new* warning, and the
reminders that repeat on a timer (muted; a call on hold with the handset down).

The phone (phone.py) calls ``show`` after every event with what it knows; this module keeps
only what was last shown, so that each sound starts and stops once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import AlertsConfig, PhoneConfig
from .display import Display
from .ports import LedsLike, Sounds
from .timers import Timers


@dataclass(frozen=True)
class Moment:
    """The phone after an event, as far as its cues go."""

    state: str
    muted: bool
    dialed: bool  # digits were dialed (no more dial tone)
    hook_lifted: bool


class Cues:
    def __init__(self, leds: LedsLike, sounds: Sounds, alerts: AlertsConfig,
                 settings: PhoneConfig, timers: Timers) -> None:
        self.leds = leds
        self.sounds = sounds
        self.alerts = alerts
        self.settings = settings
        self.timers = timers
        self.tone: str | None = None  # the call-progress tone playing
        self._ringing = False
        self._warnings: frozenset[str] = frozenset()

    def show(self, shown: Display, now: Moment, warnings: frozenset[str]) -> None:
        self.leds.show(shown.leds)
        if shown.ring != self._ringing:
            self._ringing = shown.ring
            self.sounds.ring(shown.ring)
        tone = ("dial" if now.state in ("dialing", "transfer") and not now.dialed
                else "ringback" if now.state == "calling"
                else "reconnecting" if shown.alert == "reconnecting"
                and self.alerts.reconnecting_tone else None)
        if tone != self.tone:
            self.tone = tone
            self.sounds.tone(tone)
        if warnings - self._warnings and self.alerts.warning_chirp:
            self.sounds.beep("warning")
        self._warnings = warnings
        self._remind("mute", now.muted and now.state in ("talking", "reconnecting"),
                     self.settings.mute_reminder)
        # a held call with the handset down: the beep sounds on the ringer (sounds.py)
        self._remind("hold", now.state == "held" and not now.hook_lifted,
                     self.settings.hold_reminder)

    def _remind(self, name: str, due: bool, every: float) -> None:
        if due and every > 0:
            if name not in self.timers:
                self.timers.start(name, every, lambda: self.sounds.beep(name), repeat=True)
        else:
            self.timers.cancel(name)
