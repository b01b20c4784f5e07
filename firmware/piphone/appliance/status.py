"""The phone's status in one line: what systemd shows (``systemctl status piphone``) and
``piphone status`` prints first. A pure function of what the service knows."""

from __future__ import annotations

from typing import Any

from .phone import Phone


def status_line(phone: Phone[Any], *, identity: str, registered: bool,
                offline_reason: str | None, mos: float | None, peer: str | None,
                held_peer: str | None = None) -> str:
    """``peer``: the far party as shown (a contact's name with its number), None if unknown;
    ``held_peer``: likewise the second call on hold beside it, with call waiting (None: none,
    or unknown); ``offline_reason``: why the phone is not registered (appliance/offline.py)."""
    peer = peer or "unknown"
    state = phone.state
    if state == "ringing":
        return f"ringing: call from {peer}"
    if state == "calling":
        return f"calling {peer}"
    if state in ("held", "recall"):
        return f"{peer} on hold" + (", ringing back" if state == "recall" else "")
    if state in ("talking", "reconnecting"):
        line = f"{state} {'to' if state == 'talking' else 'with'} {peer}"
        if mos is not None:
            line += f", MOS {mos:.1f}"
        if phone.muted:
            line += ", muted"
        if phone.handsfree:
            line += ", on the speaker"
        if phone.lines.held is not None:
            line += f", {held_peer or 'unknown'} on hold"
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
    return line
