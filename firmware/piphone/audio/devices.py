"""Find the headset among the ALSA cards, and notice when it is unplugged or plugged back.

Cards are read from /proc/asound/cards: it is the kernel's own list, present on every Pi,
needs no library and changes the moment a USB headset comes or goes. The watcher looks at it
when a pyudev monitor reports a ``sound`` device added or removed (at once, where udev runs),
and also polls it: the poll is the whole mechanism where udev is not running (containers, this
project's test machines), and 0.5 s is well inside the 2 s a replugged headset has to come back.
The card list stays the one source of truth; udev only says when to look.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from ..backoff import Backoff
from ..errors import PiphoneError

log = logging.getLogger(__name__)

PROC_CARDS = Path("/proc/asound/cards")
POLL_INTERVAL = 0.5  # seconds between looks at the card list
UDEV_CONTROL = Path("/run/udev/control")  # exists while udevd runs (libudev's own test)
_CARD_LINE = re.compile(r"^\s*(\d+)\s+\[(\S+)\s*\]:\s*(\S+)\s+-\s+(.*)$")


class AudioDeviceError(PiphoneError, LookupError):
    """The configured audio device is not there."""


@dataclass(frozen=True)
class Card:
    index: int
    id: str  # ALSA's short card id, e.g. "Device"
    driver: str  # e.g. "USB-Audio"
    name: str  # e.g. "USB PnP Sound Device"
    long_name: str = ""

    def describe(self) -> str:
        return f"{self.index} {self.id} ({self.driver}: {self.name})"

    @property
    def device(self) -> str:
        """The ALSA device name piphone opens: plughw converts rate and channels if need be."""
        return f"plughw:CARD={self.id},DEV=0"


def list_cards(path: Path | None = None) -> list[Card]:
    """The sound cards the kernel knows, or none when there is no sound support at all."""
    try:
        lines = (path or PROC_CARDS).read_text().splitlines()
    except OSError:
        return []
    cards: list[Card] = []
    for i, line in enumerate(lines):
        match = _CARD_LINE.match(line)
        if match is None:
            continue
        long_name = lines[i + 1].strip() if i + 1 < len(lines) else ""
        cards.append(Card(int(match[1]), match[2], match[3], match[4].strip(), long_name))
    return cards


def is_explicit(spec: str) -> bool:
    """An ALSA device name (hw:1,0, plughw:CARD=x, default, a PCM of an asoundrc...)."""
    return ":" in spec or spec in ("default", "null") or spec.startswith("piphone_")


def card_id(device: str) -> str | None:
    """``CARD=<id>`` for a device that names its card by id (``plughw:CARD=Device,DEV=0``),
    which ``select`` matches exactly: what to watch for a device given by name."""
    match = re.search(r"CARD=([^,\s]+)", device)
    return f"CARD={match[1]}" if match else None


def select(spec: str, cards: list[Card]) -> Card:
    """The card whose id, name or long name contains ``spec`` (case-insensitive); ``CARD=id``
    is that card id exactly."""
    if spec.startswith("CARD="):
        found = [card for card in cards if card.id == spec[5:]]
        if found:
            return found[0]
        cards_present = "; ".join(c.describe() for c in cards) or "no sound cards at all"
        raise AudioDeviceError(f"no ALSA card {spec!r}; present: {cards_present}")
    wanted = spec.lower()
    for card in cards:
        if any(wanted in field.lower() for field in (card.id, card.name, card.long_name,
                                                        card.driver)):
            return card
    present = "; ".join(c.describe() for c in cards) or "no sound cards at all"
    raise AudioDeviceError(f"no ALSA card matches {spec!r} (audio.headset); present: {present}")


AUTO_CARD = "USB"  # what headset "auto" looks for: a USB headset
# The start of an ALSA PCM name: an identifier, then its arguments after ':' or nothing.
_PCM_START = re.compile(r"[A-Za-z_][\w-]*(:|$)")


@dataclass(frozen=True)
class HeadsetSpec:
    """``[audio] headset`` and ``--headset``, parsed once for every user: ``none``; ``auto``
    (the USB card, if there is one); a card name to look for in the card list (and to watch
    for); an ALSA device (``hw:1,0``, ``plughw:CARD=Device,DEV=0``, ``default``) for both
    directions; or ``CAPTURE,PLAYBACK`` devices (the comma before a device name splits)."""

    capture: str | None = None  # ALSA devices, used as given
    playback: str | None = None
    card: str | None = None  # or a card name to find: its plughw device carries both
    auto: bool = False  # "auto": no such card is no headset, not an error

    @classmethod
    def parse(cls, spec: str) -> HeadsetSpec:
        if spec == "none":
            return cls()
        if spec == "auto":
            return cls(card=AUTO_CARD, auto=True)
        for at in (i for i, c in enumerate(spec) if c == ","):
            if _PCM_START.match(spec, at + 1):  # not "hw:1,0" nor "...,DEV=0"
                return cls(capture=spec[:at], playback=spec[at + 1:])
        if is_explicit(spec):
            return cls(capture=spec, playback=spec)
        return cls(card=spec)

    @property
    def none(self) -> bool:
        """No headset at all (``none``)."""
        return self.card is None and self.capture is None

    def devices(self, path: Path | None = None) -> tuple[str, str] | None:
        """(capture, playback) to open now: None for ``none``, and for ``auto`` with no USB
        card; a card name that matches no card is an AudioDeviceError naming the cards."""
        if self.card is None:
            return None if self.capture is None or self.playback is None else (
                self.capture, self.playback)
        try:
            device = select(self.card, list_cards(path)).device
        except AudioDeviceError:
            if self.auto:
                return None
            raise
        return device, device


class UdevMonitor(Protocol):
    """What CardWatcher uses of a started ``pyudev.Monitor``."""

    def fileno(self) -> int: ...

    def poll(self, timeout: float | None = None) -> object | None: ...


def udev_monitor() -> UdevMonitor | None:
    """A started pyudev monitor of the ``sound`` subsystem, or None where udev cannot tell us
    anything (no pyudev, no libudev, or no udevd to send events: then only the poll works)."""
    if not UDEV_CONTROL.exists():
        return None
    try:
        import pyudev

        monitor = pyudev.Monitor.from_netlink(pyudev.Context())
        monitor.filter_by("sound")
        monitor.start()
    except (ImportError, OSError) as exc:
        log.info("no udev monitor (%s): polling %s", exc, PROC_CARDS)
        return None
    return monitor


class CardWatcher:
    """Calls ``on_change(present)`` on the loop when the matching card goes or comes back.

    ``monitor``: a started pyudev monitor (or anything with ``fileno()`` and
    ``poll(timeout)``), by default ``udev_monitor()``; pass ``monitor=None`` to only poll.
    """

    def __init__(self, spec: str, on_change: Callable[[bool], None], *,
                 path: Path | None = None, interval: float = POLL_INTERVAL,
                 monitor: UdevMonitor | None | Literal["udev"] = "udev") -> None:
        self.spec, self._on_change, self._path, self._interval = spec, on_change, path, interval
        self.present = self._look()
        self._task: asyncio.Task | None = None
        self._monitor = udev_monitor() if isinstance(monitor, str) else monitor
        self._nudge: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def uses_udev(self) -> bool:
        return self._monitor is not None

    def _look(self) -> bool:
        if is_explicit(self.spec):
            return True  # nothing to watch: the user named the device
        try:
            select(self.spec, list_cards(self._path))
        except AudioDeviceError:
            return False
        return True

    def start(self) -> None:
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._nudge = asyncio.Event()
            if self._monitor is not None:
                self._loop.add_reader(self._monitor.fileno(), self._udev_event)
            self._task = self._loop.create_task(self._run(), name="card-watch")

    def _udev_event(self) -> None:
        """Drain what udev sent (non-blocking); any sound add/remove means: look now."""
        assert self._monitor is not None and self._nudge is not None
        while True:
            try:
                device = self._monitor.poll(timeout=0)
            except OSError as exc:  # a broken monitor: fall back to the poll alone
                log.warning("udev monitor failed (%s): polling %s", exc, PROC_CARDS)
                self._drop_monitor()
                return
            if device is None:
                return
            if getattr(device, "action", None) in ("add", "remove", "change"):
                self._nudge.set()

    def _drop_monitor(self) -> None:
        if self._monitor is not None and self._loop is not None:
            self._loop.remove_reader(self._monitor.fileno())
        self._monitor = None

    async def _run(self) -> None:
        assert self._nudge is not None
        poll = Backoff.steady(self._interval)
        while True:
            try:
                await asyncio.wait_for(self._nudge.wait(), poll.next())
            except TimeoutError:
                pass
            self._nudge.clear()
            present = self._look()
            if present != self.present:
                self.present = present
                log.warning("audio device %r %s", self.spec,
                            "is back" if present else "is gone")
                self._on_change(present)

    async def close(self) -> None:
        self._drop_monitor()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
