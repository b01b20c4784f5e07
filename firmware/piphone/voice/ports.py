"""What a call needs from the world, written down as Protocols (no aiortc here).

- ``SendFrame``: the Device's signaling stream (``Signaling.send``): a frame out, True if it
  went out now (``retry``: else queued for the next socket).
- ``MediaFactory``: how the call gets its audio: a ``CallAudioPort`` over the call's source
  and sink (its one mute, the copies that last the call), whose ``session`` makes each media
  session, a ``MediaPort`` (call_media.py; the tests' fakes).

The media port itself is voice/rtc's (rtc/ports.py: ``MediaPort``, ``CallAudioPort``): one set
of media Protocols, which the call, its reconnection and the exchange all use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .rtc.ports import CallAudioPort
    from .rtc.tracks import AudioSink, AudioSource


class SendFrame(Protocol):
    def __call__(self, type_: str, payload: dict[str, Any], *,
                 retry: bool = True) -> bool: ...


class MediaFactory(Protocol):
    """The call's audio over ``source`` (what it sends, muted or not) and ``sink`` (where the
    far end's audio plays): each ``session`` it makes sends the one and plays to the other."""

    def __call__(self, source: AudioSource, sink: AudioSink) -> CallAudioPort: ...
