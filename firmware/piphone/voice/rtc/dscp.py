"""DSCP on the media sockets: RTP marked Expedited Forwarding (46), as the SDK's ``dscp``.

A browser marks a call's packets when the SDK sets the sender's ``networkPriority`` to
``high`` (Chrome: DSCP EF). aiortc has no such setting, so the UDP sockets aioice opened for
the call (one per host candidate, and the one that talks to a TURN server) get IP_TOS 0xB8
(IPV6_TCLASS for IPv6) once gathering made them: everything the call sends from then on
(STUN checks, DTLS, RTP, RTCP) carries the mark, which a home router's or a switch's QoS queue
can honour. Setting the option never fails a call: a socket that refuses it is logged.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import aioice

from .settings import DSCP_EF

log = logging.getLogger(__name__)


def sockets(connection: aioice.Connection) -> list[socket.socket]:
    """The UDP sockets an ICE connection sends from (host candidates, TURN's own)."""
    found = []
    for protocol in getattr(connection, "_protocols", ()):
        transport: Any = getattr(protocol, "transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None and transport is not None:  # a TURN allocation: its inner socket
            inner = getattr(transport, "_TurnTransport__inner_protocol", None)
            inner_transport = getattr(inner, "transport", None)
            sock = (inner_transport.get_extra_info("socket")
                    if inner_transport is not None else None)
        if sock is not None:
            found.append(sock)
    return found


def mark(sock: socket.socket, tos: int = DSCP_EF) -> bool:
    """Set ``sock``'s traffic class to ``tos``; False (logged) if the system refused."""
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
    except OSError as exc:
        log.warning("media: cannot mark a socket with DSCP %d: %s", tos >> 2, exc)
        return False
    return True


def traffic_class(sock: socket.socket) -> int:
    """The IP_TOS (or IPV6_TCLASS) byte ``sock`` sends with."""
    if sock.family == socket.AF_INET6:
        return sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS)
    return sock.getsockopt(socket.IPPROTO_IP, socket.IP_TOS)


def mark_connection(connection: aioice.Connection, tos: int = DSCP_EF) -> int:
    """Mark every socket of ``connection``; how many took the mark."""
    return sum(mark(sock, tos) for sock in sockets(connection))
