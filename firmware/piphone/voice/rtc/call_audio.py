"""A call's audio across its media sessions: what it sends (muted or not), where what it hears
goes, and the copies of both that last the call (Call.get_local_stream, get_remote_stream).

On hold (``held``, piphone's Call.hold) what it sends is the phone's hold music and what it
hears is not played. A call outlives its peer connections (a media reconnection is a new
one): each session it makes here (``session``) sends the same gated source and plays to the
same sink. The call sees only this object's small surface (ports.CallAudioPort), never a
track's insides.
"""

from __future__ import annotations

from collections.abc import Callable

from aiortc.mediastreams import MediaStreamTrack

from ...pcm import HoldMusic
from .session import MediaSession
from .settings import MediaSettings
from .tracks import AudioSink, AudioSource, BorrowedTrack, CallStreams, HeldSink, MuteGate, as_track


class CallAudio:
    def __init__(self, source: AudioSource, sink: AudioSink) -> None:
        # The one mute path: what every session sends passes this gate (silence while muted).
        self._gate = MuteGate(as_track(source))
        self._sink = HeldSink(sink, lambda: self.held)  # plays silence while on hold
        self._streams = CallStreams(self._gate)
        self._heard = False  # the far end's audio arrived (in any session)

    @property
    def muted(self) -> bool:
        return self._gate.muted

    @muted.setter
    def muted(self, muted: bool) -> None:
        self._gate.muted = muted

    @property
    def held(self) -> bool:
        return self._gate.hold is not None

    @held.setter
    def held(self, held: bool) -> None:
        """On hold the far end hears hold music (from its first note) instead of our source,
        and what it sends is not played (piphone's extension, Call.hold)."""
        if held != self.held:
            self._gate.hold = HoldMusic() if held else None

    def session(self, settings: MediaSettings, *,
                on_state: Callable[[str], None] | None = None) -> MediaSession:
        """A new media session sending this call's source and playing to its sink."""
        return MediaSession(settings, BorrowedTrack(self._gate), sink=self._sink,
                            on_state=on_state, on_remote_track=self._arrived,
                            on_audio=self._streams.heard)

    def local_stream(self) -> MediaStreamTrack:
        """What we send (silence while muted): a copy that lasts the call."""
        return self._streams.local()

    def remote_stream(self) -> MediaStreamTrack | None:
        """What we hear, once the far end's audio arrived (else None): a copy that follows
        the call's current session across reconnections."""
        return self._streams.remote() if self._heard else None

    def end(self) -> None:
        """The call closed: stop the source, end the copies (idempotent)."""
        self._gate.stop()
        self._streams.end()

    def _arrived(self, track: MediaStreamTrack) -> None:
        self._heard = True
