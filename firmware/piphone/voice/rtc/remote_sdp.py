"""SDP from the far end, checked at the edge before aiortc sees it.

aiortc trusts what it parses. A far end (a client at the exchange, an exchange at the phone) can
make it hold and probe what it likes, or raise where nobody catches it: an offer of 400 ICE
candidates makes aioice send ~2,000 STUN packets to addresses the sender chose; a ``c=``
address that is not an address (``127.0.0.1:0``) parses, then raises whenever aiortc writes
the description out again (``pc.remoteDescription``); an m-section without a direction line
(sendrecv, RFC 4566 6.) makes ``createAnswer`` raise ``ValueError``. ``check`` refuses the
first kind with a clear ``SdpError``, fills in the default direction, and keeps at most
``max_candidates`` usable remote candidates (one log line says what was dropped).

The lines are edited as text, not rewritten through aiortc's serialiser: what we do not touch
reaches aiortc exactly as it came.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections import Counter

from aiortc.sdp import SessionDescription, candidate_from_sdp

from .settings import CODEC_MIME, MAX_REMOTE_CANDIDATES

log = logging.getLogger(__name__)

MAX_MEDIA_SECTIONS = 8  # piphone uses one (audio); each more can cost aiortc a transport
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
CANDIDATE_TYPES = ("host", "srflx", "relay")  # what aioice takes from a description
CONNECTION = re.compile(r"^IN (IP4|IP6) (\S+)$")
MDNS_NAME = re.compile(r"^[A-Za-z0-9-]{1,63}\.local$")  # aioice resolves these itself
BROADCAST = ipaddress.IPv4Address("255.255.255.255")


class SdpError(ValueError):
    """The far end's SDP is unusable; the message says why (never quoting it at length)."""


def check(sdp: str, kind: str, max_candidates: int = MAX_REMOTE_CANDIDATES) -> str:
    """The SDP aiortc may be given for a remote ``kind`` ("offer" or "answer") description,
    or SdpError."""
    if not isinstance(sdp, str):
        raise SdpError(f"the {kind} SDP is not text")
    session, sections = _sections(sdp)
    if len(sections) > MAX_MEDIA_SECTIONS:
        raise SdpError(f"{len(sections)} media sections (at most {MAX_MEDIA_SECTIONS})")
    for line in session:
        _check_line(line)
    session_direction = next((d for d in DIRECTIONS if f"a={d}" in session), "sendrecv")
    dropped: Counter[str] = Counter()
    total = kept = 0
    out = list(session)
    for section in sections:
        has_direction = False
        for line in section:
            _check_line(line)
            if line[2:] in DIRECTIONS and line.startswith("a="):
                has_direction = True
            if not line.startswith("a=candidate:"):
                out.append(line)
                continue
            total += 1
            reason = _unusable(line[len("a=candidate:"):])
            if reason is None and kept >= max_candidates:
                reason = f"over the limit of {max_candidates}"
            if reason is None:
                kept += 1
                out.append(line)
            else:
                dropped[reason] += 1
        if not has_direction:  # RFC 4566: none given is sendrecv (or the session's own)
            out.append(f"a={session_direction}")
    if dropped:
        log.warning("remote %s: kept %d of %d ICE candidates (dropped %s)", kind, kept, total,
                    ", ".join(f"{n} {why}" for why, n in dropped.most_common()))
    text = "\r\n".join(out) + "\r\n"
    try:  # what aiortc will do with it: parse, and write it out again (pc.remoteDescription)
        str(SessionDescription.parse(text))
    except Exception as exc:  # aiortc's parser asserts and raises assorted errors
        raise SdpError(f"unreadable {kind} SDP ({type(exc).__name__}: "
                       f"{_bounded(str(exc))})") from None
    return text


def _sections(sdp: str) -> tuple[list[str], list[list[str]]]:
    session: list[str] = []
    sections: list[list[str]] = []
    for line in sdp.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            session.append(line)
    return session, sections


def _check_line(line: str) -> None:
    """SdpError for a connection address aiortc would keep and then fail to write out."""
    if line.startswith("c="):
        _check_address("c=", line[2:])
    elif line.startswith("a=rtcp:"):
        parts = line[len("a=rtcp:"):].split(None, 1)
        if len(parts) == 2:
            _check_address("a=rtcp", parts[1])


def _check_address(what: str, value: str) -> None:
    match = CONNECTION.match(value)
    if match is None:
        raise SdpError(f"{what} line {_bounded(value)!r} is not 'IN IP4|IP6 ADDRESS'")
    try:
        address = ipaddress.ip_address(match.group(2))
    except ValueError:
        raise SdpError(f"{what} address {_bounded(match.group(2))!r} is not an IP "
                       "address") from None
    if f"IP{address.version}" != match.group(1):
        raise SdpError(f"{what} address {address} is not {match.group(1)}")


def _unusable(value: str) -> str | None:
    """Why a remote candidate cannot be (or must not be) probed; None if it may."""
    try:
        candidate = candidate_from_sdp(value)
    except Exception:  # aiortc asserts on too few fields, int() raises on the rest
        return "malformed"
    if candidate.protocol.lower() != "udp":
        return "not UDP"  # aioice only does UDP
    if candidate.component != 1:
        return "not component 1"  # piphone multiplexes RTCP (rtcp-mux): one component
    if candidate.type not in CANDIDATE_TYPES:
        return "of unknown type"
    if not 0 < candidate.port < 65536:
        return "with a bad port"
    try:
        address = ipaddress.ip_address(candidate.ip)
    except ValueError:
        return None if MDNS_NAME.match(candidate.ip) else "with a bad address"
    if address.is_unspecified or address.is_multicast or address == BROADCAST:
        return "with an unspecified, multicast or broadcast address"
    return None


def _bounded(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def codecs_of(sdp: str) -> list[str]:
    """The known codecs (opus, pcmu) an SDP lists for audio, in its order."""
    try:
        description = SessionDescription.parse(sdp)
    except Exception:  # aiortc's parser raises assorted errors on garbage
        return []
    names = [c.mimeType.split("/", 1)[1].lower() for m in description.media
             if m.kind == "audio" for c in m.rtp.codecs]
    return [n for n in dict.fromkeys(names) if n in CODEC_MIME]


def codec_of(sdp: str) -> str | None:
    """The codec an answer SDP selects (its first known audio codec): opus or pcmu."""
    return next(iter(codecs_of(sdp)), None)
