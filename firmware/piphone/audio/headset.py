"""The headset as a whole: its microphone, its earpiece and the ring device, and whether it is
there at all.

A USB headset can be pulled out mid-call. The call must not notice beyond a warning: capture
keeps sending silence at its 20 ms pace, playback discards, and the streams try to reopen the
device (alsa.py does that). This module adds what a single stream cannot know: the card list
(``devices.CardWatcher``, udev or a poll of /proc/asound/cards) says the card is gone before a
read fails, or that it is back so the streams reopen at once; and one ``present`` flag with two
events for the appliance:

- ``lost(reason: str)`` when the headset stops working (its card left the list, or a read or
  write failed), once until it is back;
- ``back()`` when the card is listed again and capture and playback (those started) reopened.

The ring device (``audio.ring_device``, a separate speaker) defaults to the headset's own
earpiece, so the ring is mixed into it; a separate one is its own Playback with its own
reopen tries, and does not make the headset lost.

A headset configured by card name (``USB``) may be absent when piphone starts:
``from_spec(..., wait=True)`` then makes a Headset that is not ``present`` and waits for a card
that matches the name; when one is listed, capture and playback open on it and ``back`` is
emitted. The name is matched again each time the card comes back, so another headset of the
same kind plugged in in its place is used too.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Literal

from pyee.asyncio import AsyncIOEventEmitter

from . import devices
from .alsa import Capture, Playback
from .devices import AudioDeviceError, HeadsetSpec
from .pcm_io import CaptureSource, PlaybackSink

log = logging.getLogger(__name__)


class Headset(AsyncIOEventEmitter):
    """``capture`` and ``playback`` ALSA devices (``ring``: the ring device's, default the
    playback's); ``card``: the card name to watch in the card list, by default the card a
    ``...:CARD=<id>`` capture device names (None: nothing to watch, e.g. ``hw:1,0``)."""

    def __init__(self, capture: str, playback: str, ring: str | None = None, *,
                 card: str | None = None, cards_path: Path | None = None,
                 poll_interval: float = devices.POLL_INTERVAL,
                 monitor: devices.UdevMonitor | None | Literal["udev"] = "udev",
                 playback_options: dict | None = None) -> None:
        super().__init__()
        options = playback_options or {}  # Playback's period_ms, periods, buffer_periods
        self.capture = Capture(capture, on_failure=lambda err: self._fail("capture", err),
                               on_recovered=lambda: self._recovered("capture"))
        self.playback = Playback(playback, on_failure=lambda err: self._fail("playback", err),
                                 on_recovered=lambda: self._recovered("playback"), **options)
        self.ring = self.playback if ring in (None, playback) else Playback(ring, **options)
        self.card = card = card or devices.card_id(capture)
        self._down: dict[str, str] = {}  # what is not working -> why
        self._watcher = (None if card is None else
                         devices.CardWatcher(card, self._card_changed, path=cards_path,
                                             interval=poll_interval, monitor=monitor))
        self._name: str | None = None  # a card name to match again when a card comes back
        self._cards_path = cards_path
        if self._watcher is not None and not self._watcher.present:
            reason = f"no ALSA card matches {card!r}"
            self._down["card"] = reason
            for stream in (self.capture, self.playback):  # no reopen tries until it is listed
                stream.suspend(AudioDeviceError(reason))
        self._reported = self.present  # what the last lost/back said

    @classmethod
    def from_spec(cls, spec: str | HeadsetSpec, ring: str | None = None, *,
                  wait: bool = False, **kwargs: Any) -> Headset:
        """``audio.headset`` (devices.HeadsetSpec): a card name such as ``USB`` or ``auto``
        (watched), an ALSA device, or ``CAPTURE,PLAYBACK``. A card name that matches nothing
        is an AudioDeviceError that names it and lists the cards present, or with ``wait`` a
        Headset that is not present until such a card is plugged in."""
        parsed = HeadsetSpec.parse(spec) if isinstance(spec, str) else spec
        if parsed.card is None:
            if parsed.capture is None or parsed.playback is None:
                raise ValueError("headset 'none' has no devices to open")
            return cls(parsed.capture, parsed.playback, ring, **kwargs)
        card = parsed.card
        try:
            device = devices.select(card, devices.list_cards(kwargs.get("cards_path"))).device
        except AudioDeviceError as err:
            if not wait:
                raise
            log.warning("%s: waiting for it to be plugged in", err)
            device = f"(no card matching {card!r} yet)"  # never opened: the streams wait
        headset = cls(device, device, ring, card=card, **kwargs)
        headset._name = card
        return headset

    @property
    def present(self) -> bool:
        """The headset works: its card is listed and no started stream has failed."""
        return not self._down

    def open(self, *, tolerate_missing: bool = False) -> None:
        """Open capture and playback now (on the loop) and start watching the card: a device
        that is missing now is an AudioDeviceError naming it, unless ``tolerate_missing``
        (then it reopens by itself once it is there)."""
        for stream in self._streams():
            stream.start(tolerate_missing=tolerate_missing)
        self.watch()

    def watch(self) -> None:
        """Start watching the card without opening anything (tracks open lazily)."""
        if self._watcher is not None:
            self._watcher.start()

    def source(self) -> CaptureSource:
        """A call's audio_source: the microphone (PCM)."""
        return CaptureSource(self.capture)

    def sink(self) -> PlaybackSink:
        """A call's audio_sink: the earpiece (PCM)."""
        return PlaybackSink(self.playback)

    def _streams(self) -> list[Capture | Playback]:
        streams: list[Capture | Playback] = [self.capture, self.playback]
        return streams + ([self.ring] if self.ring is not self.playback else [])

    def _card_changed(self, present: bool) -> None:
        if present:
            if self._name is not None:
                self._use_card(self._name)
            self._down.pop("card", None)
            for stream in (self.capture, self.playback):
                stream.resume()  # reopen now, not at the next retry
                if stream.failed is None:  # back before its thread even noticed it was gone
                    self._down.pop(stream.direction, None)
            self._settle()
            return
        # Gone from the card list: a started stream counts as failed from now on, even if
        # its failed read has not reached the loop yet (else `back` could come before it).
        for stream in (self.capture, self.playback):
            stream.suspend(AudioDeviceError(f"the ALSA card {self.card!r} is gone"))
            if stream.started:
                self._down.setdefault(stream.direction, "the card is gone")
        self._mark_down("card", f"the ALSA card {self.card!r} is gone")

    def _use_card(self, name: str) -> None:
        """Open the card now listed under ``name`` (perhaps not the one there before)."""
        try:
            card = devices.select(name, devices.list_cards(self._cards_path))
        except AudioDeviceError:  # gone again already: the watcher will say so
            return
        if card.device != self.playback.device or card.device != self.capture.device:
            log.warning("headset %r plugged in: %s, device %s", name, card.describe(),
                        card.device)
        # The threads read .device at their next open, which resume() asks for.
        self.capture.device = self.playback.device = card.device

    def _fail(self, direction: str, err: Exception) -> None:
        self._mark_down(direction, f"{direction} failed: {err}")

    def _recovered(self, direction: str) -> None:
        self._down.pop(direction, None)
        self._settle()

    def _mark_down(self, what: str, reason: str) -> None:
        self._down.setdefault(what, reason)
        if self._reported:
            self._reported = False
            log.warning("headset lost: %s", reason)
            self.emit("lost", reason)

    def _settle(self) -> None:
        if self.present and not self._reported:
            self._reported = True
            log.warning("headset back")
            self.emit("back")

    async def close(self) -> None:
        """Stop watching and close the devices (their threads are joined off the loop)."""
        if self._watcher is not None:
            await self._watcher.close()
        for stream in self._streams():
            await asyncio.to_thread(stream.close)
