"""DTMF digits as Twilio's ``sendDigits`` takes them: 0-9, * and #, and ``w`` for a pause.

Defined once for everyone who sends or plays digits: the voice Call (``send_digits``), the
exchange relaying a browser's ``12w3`` and the phone's local key tones (audio/tones.py). A
bottom-layer module (like errors.py): it imports nothing of piphone.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

DIGITS = re.compile(r"[0-9*#w]*")  # what send_digits accepts
PAUSE = 0.5  # seconds each 'w' waits (Twilio.Call.sendDigits: "a 500-millisecond pause")


async def send_with_pauses(digits: str, send: Callable[[str], object]) -> None:
    """Hand ``send`` each run of digits between ``w``s, waiting PAUSE for every ``w``:
    ``"12w3"`` sends ``"12"``, waits 0.5 s, sends ``"3"``."""
    for index, group in enumerate(digits.split("w")):
        if index:
            await asyncio.sleep(PAUSE)
        if group:
            send(group)
