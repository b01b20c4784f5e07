"""Service lines the exchange answers itself: echo (your audio back) and tone (1 kHz)."""

from __future__ import annotations

from ..pcm import Tone
from ..voice.rtc import MediaSettings
from .bridge import Leg

TONE_HZ = 1000.0


def answer_leg(line: str, settings: MediaSettings) -> Leg:
    """The exchange's leg for a call to ``line``, wired to play what the line plays."""
    if line == "echo":
        leg = Leg(settings)
        leg.connect_to(leg.outbox)
        return leg
    if line == "tone":
        leg = Leg(settings, source=Tone(TONE_HZ))
        leg.connect_to(None)
        return leg
    raise ValueError(f"unknown line {line!r}")
