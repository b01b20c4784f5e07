"""systemd's notify protocol for piphone's daemons (the phone and the exchange), by sdnotify.

``Notifier.send`` is a no-op without NOTIFY_SOCKET, so a daemon run by hand behaves the same.
The watchdog is fed from the event loop itself, so a stuck loop is what systemd notices.
The notify protocol is one ``KEY=value`` per line: a status line quotes callers (their
identity), so it is escaped to one line of printable text before it is sent; ``send`` is for
our own fixed messages.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import sdnotify

from .logsafe import text

log = logging.getLogger(__name__)

STATUS_LIMIT = 200  # characters of a status line (systemctl status shows one line)


class Notifier:
    """sd_notify messages; STATUS= only when the line changes."""

    def __init__(self) -> None:
        self._systemd = sdnotify.SystemdNotifier()
        self.status: str | None = None

    def send(self, message: str) -> None:
        self._systemd.notify(message)

    def set_status(self, line: str) -> None:
        """STATUS=line, with newlines and control characters escaped (a caller named
        ``eve\nWATCHDOG=trigger`` must not add a line of its own), bounded."""
        line = text(line, STATUS_LIMIT)
        if line != self.status:
            self.status = line
            self.send(f"STATUS={line}")
            log.info("status: %s", line)


def watchdog_interval(environ: Any = os.environ) -> float | None:
    """Seconds between WATCHDOG=1 (half of WATCHDOG_USEC), or None when there is no watchdog
    for this process."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number; no watchdog", usec)
        return None
    return value / 2 / 1e6 if value > 0 else None


async def feed_watchdog(notifier: Notifier, interval: float) -> None:
    """WATCHDOG=1 every ``interval`` seconds, from the loop, until cancelled."""
    while True:
        notifier.send("WATCHDOG=1")
        await asyncio.sleep(interval)
