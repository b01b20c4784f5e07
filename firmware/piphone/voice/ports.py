"""What a call needs from the world, written down as Protocols (no aiortc here).

- ``SendFrame``: the Device's signaling stream (``Signaling.send``): a frame out, True if it
  went out now (``retry``: else queued for the next socket).
- ``MediaSession``: one media session (a peer connection) as the call uses it, with the names
  of voice.media.MediaSession; voice/rtc's media port is the same thing seen from the media
  side. ``ice_completed`` and ``packets_received`` are what the call asks the session to
  offer (voice/call_media.py adds them to today's session until it does).
- ``MediaFactory``: how the call gets a new session wired to its audio (call_media.py; the
  tests' fakes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .media import MediaSettings
    from .meter import LevelMeter


class SendFrame(Protocol):
    def __call__(self, type_: str, payload: dict[str, Any], *,
                 retry: bool = True) -> bool: ...


class MediaSession(Protocol):
    @property
    def codec(self) -> str | None: ...  # opus or pcmu once negotiated

    @property
    def ice_completed(self) -> bool: ...  # ICE is through (DTLS may still be on its way)

    @property
    def packets_received(self) -> int: ...  # RTP packets so far (the watchdog's count)

    # The levels of what is sent and heard, once ``meter_levels`` was called (quality.py).
    input_meter: LevelMeter | None
    output_meter: LevelMeter | None

    async def offer(self) -> str: ...  # create and apply an offer (gathers ICE): its SDP

    async def apply_answer(self, sdp: str) -> None: ...

    async def check_offer(self, offer_sdp: str) -> None: ...  # MediaError if unusable

    async def prepare_answer(self, offer_sdp: str) -> None: ...  # apply it, gather ICE

    async def answer(self) -> str: ...  # create and apply the answer: its SDP

    async def wait_connected(self, timeout: float | None = None) -> None: ...  # or MediaError

    async def close(self) -> None: ...  # idempotent

    def meter_levels(self, on_tick: Callable[[], None] | None = None,
                     tick_every: float = 0.05) -> None: ...


class MediaFactory(Protocol):
    """A new media session for a call, sending ``source`` (the call's muted-or-not audio):
    ``on_state`` gets its connection state changes (``failed`` matters), ``on_remote_track``
    the far end's audio track, ``on_audio`` every decoded frame heard."""

    def __call__(self, settings: MediaSettings, source: Any, *,
                 on_state: Callable[[str], None],
                 on_remote_track: Callable[[Any], None],
                 on_audio: Callable[[Any], None]) -> MediaSession: ...
