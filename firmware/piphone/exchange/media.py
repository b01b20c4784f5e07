"""The exchange's media, as the call layer uses it: each leg's media session, and bridging.

The call layer (calls.py and its helpers) reaches media through this module only. ``LegMedia``
is one leg's media session at the exchange (offer and answer, whether it connected, its codec
and counters); ``MediaBridge`` makes a leg's media for a caller, a device being rung, a service
line or a media restart, in the codecs the client's offer allows, and joins two legs' audio.
Underneath are bridge.py (a leg's peer connection and the audio bridge) and lines.py (the
lines the exchange answers itself).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from ..pcm import PcmSource
from ..voice.rtc import (
    Counters,
    MediaError,
    MediaSettings,
    Mixer,
    NoIceCandidate,
    Player,
    codecs_of,
    is_loopback,
)
from . import lines
from .bridge import Leg, bridge
from .config import ExchangeConfig
from .routing import Route

__all__ = ["LegMedia", "MediaBridge", "MediaError", "NoIceCandidate"]

log = logging.getLogger(__name__)


class LegMedia:
    """One leg's media session at the exchange (a bridge.Leg and what it sends)."""

    def __init__(self, leg: Leg) -> None:
        self.leg = leg

    @property
    def settings(self) -> MediaSettings:
        return self.leg.media.settings

    @property
    def codec(self) -> str | None:
        """The negotiated codec; None before the answer, or when aiortc cannot say (logged):
        it is read while calls end, which must go on."""
        try:
            return self.leg.codec
        except Exception:
            log.exception("the codec of a leg's media is unreadable")
            return None

    @property
    def connected(self) -> bool:
        """Whether ICE and DTLS are connected (aiortc may raise on a broken session)."""
        return self.leg.media.state == "connected"

    async def offer(self) -> str:
        return await self.leg.media.offer()

    async def apply_answer(self, sdp: str) -> None:
        await self.leg.media.apply_answer(sdp)

    async def prepare_answer(self, offer_sdp: str) -> None:
        await self.leg.media.prepare_answer(offer_sdp)

    async def answer(self) -> str:
        return await self.leg.media.answer()

    def local_sdp(self) -> str:
        """The SDP this side last sent ("" before one, or if unreadable: logged): a client
        that resumes its leg gets it again."""
        return self.leg.media.local_sdp

    def remote_sdp(self) -> str:
        """The client's SDP as it sent it (the last one taken), "" before one."""
        return self.leg.media.remote_sdp

    async def counters(self) -> Counters:
        return await self.leg.media.counters()

    async def close(self) -> None:
        await self.leg.close()


class MediaBridge:
    """Makes each leg's media with the exchange's settings, and bridges two legs."""

    def __init__(self, settings: MediaSettings) -> None:
        self.settings = settings

    @classmethod
    def of(cls, config: ExchangeConfig) -> MediaBridge:
        """The media of the exchange that ``config`` describes (exchange.toml)."""
        return cls(MediaSettings(ice_addresses=config.ice_addresses,
                                 codec_preferences=config.codec_preferences,
                                 max_remote_candidates=config.max_remote_candidates))

    def serve_on(self, host: str) -> None:
        """The exchange serves on ``host``: bound to loopback, its clients are on this
        machine, so offer them 127.0.0.1 too (aioice leaves it out)."""
        self.settings = replace(self.settings, ice_loopback=is_loopback(host))

    def taken(self, sdp: str) -> tuple[str, ...]:
        """The codecs an offer lists that the exchange takes, in the offer's order."""
        return tuple(c for c in codecs_of(sdp) if c in self.settings.codec_preferences)

    def for_caller(self, route: Route, offer_sdp: str) -> LegMedia:
        """The caller's media. It is answered in the caller's order of preference, as Twilio's
        edge does (the SDK puts PCMU first): the caller's codec is the first it offered that we
        take. A call to a service line gets the line's media."""
        offered = self.taken(offer_sdp)
        settings = replace(self.settings, codec_preferences=offered) if offered else self.settings
        return self._make(route.target if route.kind == "line" else None, settings)

    def for_fork(self, caller: LegMedia) -> LegMedia:
        """A callee's media, offering the caller's codecs in the caller's order: a callee that
        takes the caller's codec answers with it (piphone keeps the offer's order, as JSEP
        says), so both ends agree and nothing is transcoded; one that does not still gets
        through."""
        return self._make(None, caller.settings)

    def for_restart(self, old: LegMedia, offered: tuple[str, ...],
                    line: str | None) -> LegMedia:
        """New media for a leg whose client restarts its media (``offered``: its offer's codecs
        we take). It keeps the leg's codec when the offer still has it, so the bridge keeps
        forwarding. ``line``: the service line a caller's leg plays, if any."""
        current = old.codec
        prefs = (current,) if current is not None and current in offered else offered
        return self._make(line, replace(old.settings, codec_preferences=prefs))

    @staticmethod
    def join(a: LegMedia, b: LegMedia) -> str:
        """Bridge two legs' audio both ways: "forwarded" when their codecs agree, else
        "transcoded" (bridge.py)."""
        return bridge(a.leg, b.leg)

    @staticmethod
    def mix(mixer: Mixer | None, legs: Sequence[LegMedia]) -> Mixer:
        """Mix ``legs``' audio (a conference: each hears the others, rtc/mixing.py); returns
        the mixer (``mixer`` again, with these legs, if given)."""
        mixer = mixer or Mixer()
        mixer.set_members([(media.leg.media, media.leg.outbox) for media in legs])
        return mixer

    @staticmethod
    def play(media: LegMedia, source: PcmSource) -> Player:
        """Send ``source``'s audio to the leg (a ringback) until ``stop`` or a join; returns
        the player (rtc/playing.py)."""
        player = Player(source, media.leg.outbox)
        player.start()
        return player

    @staticmethod
    def _make(line: str | None, settings: MediaSettings) -> LegMedia:
        return LegMedia(lines.answer_leg(line, settings) if line is not None else Leg(settings))
