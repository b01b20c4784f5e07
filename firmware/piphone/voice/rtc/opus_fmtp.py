"""Opus's ``maxaveragebitrate`` (RFC 7587 7.1) in SDP text: what a party may receive at most.

``with_max_average_bitrate`` is what the SDK's ``setMaxAverageBitrate`` (rtc/sdp.ts) does to
every offer and answer it makes: ``;maxaveragebitrate=N`` appended to the Opus ``a=fmtp``
line (aiortc writes none: then the line is added), and nothing at all for a value outside
6000-510000. ``max_average_bitrate_of`` reads
the far end's, which caps what our encoder sends (as a browser's Opus encoder does).

Edited as text, as the SDK does: aiortc parses the fmtp parameters and writes them out again.
"""

from __future__ import annotations

import re

from .settings import BITRATE_MAX, BITRATE_MIN

OPUS_RTPMAP = re.compile(r"^a=rtpmap:(\d+) opus/", re.IGNORECASE | re.MULTILINE)


def with_max_average_bitrate(sdp: str, bitrate: int | None) -> str:
    """``sdp`` asking for at most ``bitrate`` bit/s of Opus (unchanged without Opus, or for a
    bitrate that is None or outside BITRATE_MIN-MAX)."""
    if bitrate is None or not BITRATE_MIN <= bitrate <= BITRATE_MAX:
        return sdp
    lines = sdp.split("\r\n")
    for payload_type in OPUS_RTPMAP.findall(sdp):
        prefix = f"a=fmtp:{payload_type} "
        found = [i for i, line in enumerate(lines) if line.startswith(prefix)]
        for i in found:
            params = [p for p in lines[i][len(prefix):].split(";")
                      if p and not p.strip().lower().startswith("maxaveragebitrate=")]
            lines[i] = prefix + ";".join([*params, f"maxaveragebitrate={bitrate}"])
        if not found:  # aiortc writes no fmtp line for Opus: one after its rtpmap
            at = next(i for i, line in enumerate(lines)
                      if line.lower().startswith(f"a=rtpmap:{payload_type} opus/"))
            lines.insert(at + 1, f"{prefix}maxaveragebitrate={bitrate}")
    return "\r\n".join(lines)


def max_average_bitrate_of(sdp: str) -> int | None:
    """The Opus maxaveragebitrate the far end's SDP asks for, if any (in range)."""
    for payload_type in OPUS_RTPMAP.findall(sdp):
        found = re.search(rf"^a=fmtp:{payload_type} .*?maxaveragebitrate=(\d{{1,7}})", sdp,
                          re.IGNORECASE | re.MULTILINE)
        if found and BITRATE_MIN <= int(found.group(1)) <= BITRATE_MAX:
            return int(found.group(1))
    return None
