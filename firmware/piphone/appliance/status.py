"""The phone's status in one line: what systemd shows (``systemctl status piphone``) and
``piphone status`` prints first. A pure function of what the service knows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .phone import Phone


def status_line(phone: Phone[Any], *, identity: str, registered: bool,
                offline_reason: str | None, mos: float | None,
                label: Callable[[str | None], str | None] = lambda number: number) -> str:
    """``label``: a far party's number as shown (contacts.py: a contact's name with its
    number), None if unknown; ``offline_reason``: why the phone is not registered
    (appliance/offline.py)."""
    peer = label(phone.peer) or "unknown"
    state = phone.state
    if state == "ringing":
        return f"ringing: call from {peer}"
    if state == "calling":
        return f"calling {peer}"
    if state == "voicemail":
        return f"voicemail: {phone.mailbox.messages} message(s), playing"
    if state in ("held", "recall"):
        return f"{peer} on hold" + (", ringing back" if state == "recall" else "")
    if state == "transfer":  # the number to hand the call on to is being keyed
        return f"{peer} on hold, transfer to {phone.digits or '...'}"
    if state in ("talking", "reconnecting"):
        line = f"{state} {'to' if state == 'talking' else 'with'} {peer}"
        if mos is not None:
            line += f", MOS {mos:.1f}"
        if phone.muted:
            line += ", muted"
        if phone.handsfree:
            line += ", on the speaker"
        if phone.lines.held is not None:  # a second call on hold, with call waiting
            line += f", {label(phone.lines.held.peer) or 'unknown'} on hold"
        if phone.warnings:
            line += f", warnings: {', '.join(sorted(phone.warnings))}"
        return line
    line = f"registered as {identity}" if registered else f"not registered as {identity}"
    if not registered and offline_reason:
        line += f" ({offline_reason})"
    if state == "dialing":
        line += ", off hook"
    if phone.dnd:
        line += ", do not disturb"
    if phone.missed:
        line += f", {phone.missed} missed call{'s' if phone.missed > 1 else ''}"
    if phone.mailbox.unheard:
        line += f", {phone.mailbox.unheard} new voicemail"
    return line
