"""Twilio's signaling edges, as the SDK names them (regions.ts): ``edge`` option -> URLs, and
the edge a ``connected`` frame names.

appliance/config.py keeps a copy of EDGES, to check a config without importing aiortc
(tests/unit/test_tls.py checks that they match).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# The SDK's Edge names, and the edge of each region a `connected` frame may name.
EDGES = ("roaming", "ashburn", "dublin", "frankfurt", "sao-paulo", "singapore", "sydney",
         "tokyo", "umatilla", "ashburn-ix", "san-jose-ix", "london-ix", "frankfurt-ix",
         "singapore-ix", "sydney-ix", "tokyo-ix")
REGION_EDGES = {"au1": "sydney", "br1": "sao-paulo", "ie1": "dublin", "de1": "frankfurt",
                "jp1": "tokyo", "sg1": "singapore", "us1": "ashburn", "us2": "umatilla",
                "gll": "roaming", "us1-ix": "ashburn-ix", "us2-ix": "san-jose-ix",
                "ie1-ix": "london-ix", "de1-ix": "frankfurt-ix", "sg1-ix": "singapore-ix",
                "au1-ix": "sydney-ix", "jp1-ix": "tokyo-ix"}


def twilio_signaling_url(edge: str = "roaming") -> str:
    return f"wss://voice-js.{edge}.twilio.com/signal"


def edge_list(edge: str | Sequence[str]) -> tuple[str, ...]:
    """``edge`` as the SDK takes it (a name or a list of names, in order of preference)."""
    edges = (edge,) if isinstance(edge, str) else tuple(edge)
    if not edges:
        raise ValueError("edge must name at least one edge")
    for name in edges:
        if name not in EDGES:
            raise ValueError(f"unknown edge {name!r}; one of {', '.join(EDGES)}")
    return edges


def connected_edge(payload: Mapping[str, Any]) -> str | None:
    """The edge of a ``connected`` frame, as the SDK reads it: its ``edge``, else its region's
    edge, else the region itself."""
    region = payload.get("region")
    edge = payload.get("edge") or (REGION_EDGES.get(region.lower()) if isinstance(region, str)
                                   else None) or region
    return edge if isinstance(edge, str) else None
