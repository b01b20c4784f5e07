"""What a media session tells of its network path, for a preflight test (voice/preflight.py):
when its ICE, DTLS and peer connection went from connecting to connected, when its offer was
answered, and the ICE candidates gathered, received and chosen.

The SDK's PreflightTest measures the same states of the browser's RTCPeerConnection
(preflight.ts: ``checking``/``connecting`` starts a measure, ``connected``/``stable`` ends it;
aiortc's ICE says ``completed`` where a browser says ``connected``) and reads the candidates
from its ``getStats`` (rtc/stats.ts). aiortc's getStats has no candidate statistics, so they
are read from aioice's Connection: its public candidate lists and the nominated pair (the
private ``_nominated``, which hooks.check() already guards).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import aioice
import aiortc

from .ports import NetworkReport

log = logging.getLogger(__name__)

# connection state -> measure: the states that start it, and those that end it
_MEASURES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "peerConnection": (frozenset({"connecting"}), frozenset({"connected"})),
    "ice": (frozenset({"checking"}), frozenset({"connected", "completed"})),
    "dtls": (frozenset({"connecting"}), frozenset({"connected"})),
    "signaling": (frozenset({"have-local-offer", "have-remote-offer"}), frozenset({"stable"})),
}


def now_ms() -> int:
    """A timestamp as the SDK's (``Date.now()``): milliseconds since the epoch."""
    return round(time.time() * 1000)


class NetworkWatch:
    """Timestamps one peer connection's state changes (attach it before negotiation)."""

    def __init__(self, pc: aiortc.RTCPeerConnection, dtls: aiortc.RTCDtlsTransport,
                 clock: Callable[[], int] = now_ms) -> None:
        self._pc = pc
        self._dtls = dtls
        self._clock = clock
        self.timing: dict[str, dict[str, int]] = {}
        pc.on("connectionstatechange", lambda: self.state("peerConnection", pc.connectionState))
        pc.on("iceconnectionstatechange", lambda: self.state("ice", pc.iceConnectionState))
        pc.on("signalingstatechange", lambda: self.state("signaling", pc.signalingState))
        dtls.on("statechange", lambda: self.state("dtls", dtls.state))

    def state(self, measure: str, state: str) -> None:
        """As the SDK's shim: a start state (re)starts the measure, the first end state ends it."""
        starts, ends = _MEASURES[measure]
        timing = self.timing.get(measure)
        if state in starts and (timing is None or "end" not in timing):
            self.timing[measure] = {"start": self._clock()}
        elif state in ends and timing is not None and "end" not in timing:
            timing["end"] = self._clock()
            timing["duration"] = timing["end"] - timing["start"]

    def report(self) -> NetworkReport:
        candidates: list[dict[str, Any]] = []
        selected: dict[str, dict[str, Any]] | None = None
        connection = getattr(self._dtls.transport, "_connection", None)
        if isinstance(connection, aioice.Connection):
            local = [_stats(c, "local-candidate", n)
                     for n, c in enumerate(connection.local_candidates)]
            remote = [_stats(c, "remote-candidate", n)
                      for n, c in enumerate(connection.remote_candidates)]
            candidates = local + remote
            pair = connection._nominated.get(1)
            if pair is not None:
                chosen_local = pair.protocol.local_candidate
                chosen_remote = pair.remote_candidate
                selected = {
                    "localCandidate": _find(local, chosen_local, "local-candidate"),
                    "remoteCandidate": _find(remote, chosen_remote, "remote-candidate")}
        return NetworkReport(timing={k: dict(v) for k, v in self.timing.items()},
                             ice_candidate_stats=tuple(candidates), selected_pair=selected)


def _stats(candidate: aioice.Candidate, kind: str, number: int) -> dict[str, Any]:
    """One candidate as the browser's RTCIceCandidateStats (the fields aioice knows)."""
    stats: dict[str, Any] = {
        "id": f"RTCIceCandidate_{'remote' if kind == 'remote-candidate' else 'local'}_{number}",
        "type": kind,
        "isRemote": kind == "remote-candidate",
        "address": candidate.host,
        "port": candidate.port,
        "protocol": candidate.transport.lower(),
        "candidateType": candidate.type,
        "priority": candidate.priority,
        "foundation": candidate.foundation,
    }
    if candidate.related_address is not None:
        stats["relatedAddress"] = candidate.related_address
        stats["relatedPort"] = candidate.related_port
    return stats


def _find(stats: list[dict[str, Any]], candidate: aioice.Candidate | None,
          kind: str) -> dict[str, Any]:
    """The stats of the chosen candidate (a peer-reflexive one is not in the lists)."""
    if candidate is None:
        return {"type": kind}
    for item in stats:
        if (item["address"], item["port"], item["candidateType"]) == (
                candidate.host, candidate.port, candidate.type):
            return item
    return _stats(candidate, kind, len(stats))
