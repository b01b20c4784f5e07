"""Media legs at the exchange and the audio bridge between them.

Like Twilio's edge, every client's media ends here: one media session (voice/rtc) per leg.
When two bridged legs use the same codec, the bridge forwards each encoded frame from one
leg's receiver to the other leg's sender as it arrives: no decoding, no re-encoding, no clock
of ours in the path. Only when the codecs differ (an Opus leg and a PCMU leg), or for lines
set up before negotiation (echo), is audio decoded and re-encoded on the receiving leg's
paced clock. How is the media sessions' business (rtc/forwarding.py); a leg works through the
media port (rtc.LegMediaPort).
"""

from __future__ import annotations

from ..pcm import PcmSource, PcmTarget
from ..voice.rtc import LegMediaPort, MediaSession, MediaSettings, Outbox


class Leg:
    """One client's media session at the exchange, with what it sends (``outbox``, or
    ``source``: a line's own audio)."""

    def __init__(self, settings: MediaSettings, source: PcmSource | None = None) -> None:
        self.outbox = Outbox()
        self.media: LegMediaPort = MediaSession(settings, source or self.outbox)

    @property
    def codec(self) -> str | None:
        return self.media.codec

    def connect_to(self, target: PcmTarget | None) -> None:
        """Decode what this leg receives into ``target`` (None: drain and discard)."""
        self.media.decode_to(target)

    def forward_to(self, target: Outbox) -> None:
        """Hand each encoded frame this leg receives to ``target`` undecoded."""
        self.media.forward_to(target)

    async def close(self) -> None:
        await self.media.close()  # stops what decodes or forwards, then the peer connection


def bridge(a: Leg, b: Leg) -> str:
    """Join two legs' audio both ways: forwarded when their codecs agree, else transcoded.
    Returns "forwarded" or "transcoded"."""
    if a.codec is not None and a.codec == b.codec:
        a.forward_to(b.outbox)
        b.forward_to(a.outbox)
        return "forwarded"
    a.connect_to(b.outbox)
    b.connect_to(a.outbox)
    return "transcoded"
