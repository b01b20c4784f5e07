"""Call quality samples: one second of a call as the SDK's RTCSample, its totals, and the
SDK's E-model MOS (rtc/mos.ts), made from two statistics reads of the media port; with a
handsfree device, what its echo canceller saw (``EchoStats``: a port the appliance wires to
the capture stage, since voice/ knows nothing of audio/).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Protocol

from .rtc.ports import Counters
from .thresholds import camel


class EchoStats(Protocol):
    """The last second of the microphone's echo canceller (audio/processing.EchoFigures):
    None where it cannot be said (the far end did not play that second)."""

    @property
    def echo_return_loss_enhancement(self) -> float | None: ...  # dB removed

    @property
    def residual_echo_level(self) -> float | None: ...  # dBFS left while the far end played


@dataclass(frozen=True)
class Totals:
    bytes_received: int = 0
    bytes_sent: int = 0
    packets_lost: int = 0
    packets_lost_fraction: float = 0.0  # percent of all inbound packets (100 when none yet)
    packets_received: int = 0
    packets_sent: int = 0


@dataclass(frozen=True)
class Sample:
    """One second of a call, as the SDK's RTCSample (``to_dict`` gives its camelCase keys)."""

    audio_input_level: int  # 0..32767, what we send (before encoding)
    audio_output_level: int  # 0..32767, what we hear (after decoding)
    bytes_received: int  # RTP payload bytes this second
    bytes_sent: int
    codec_name: str
    jitter: float | None  # ms
    mos: float | None
    packets_lost: int  # this second
    packets_lost_fraction: float  # percent of this second's inbound packets
    packets_received: int
    packets_sent: int
    rtt: float | None  # ms
    timestamp: float  # ms since the epoch
    totals: Totals
    # piphone's receive buffer (voice/rtc/jitter.py), beyond the SDK
    jitter_buffer_depth: int | None = None  # frames waiting now
    jitter_buffer_target: int | None = None  # frames it means to keep
    frames_concealed: int = 0  # this second
    frames_late: int = 0  # this second
    # the echo canceller of a handsfree device (None: no canceller, or no far end to cancel)
    echo_return_loss_enhancement: float | None = None  # dB
    residual_echo_level: float | None = None  # dBFS of what is sent while the far end plays

    def to_dict(self) -> dict[str, Any]:
        # Every field is a number, a string or None (totals aside): no need for asdict's
        # recursive copy, which cost more than building the sample (quality_cost.py).
        data = {camel: getattr(self, name) for name, camel in _SAMPLE_KEYS}
        totals = self.totals
        data["totals"] = {camel: getattr(totals, name) for name, camel in _TOTALS_KEYS}
        return data

    def get(self, stat: str) -> Any:
        """A field by its SDK name (``packetsLostFraction``)."""
        return getattr(self, _FIELD_OF[stat])


_SAMPLE_KEYS = tuple((f.name, camel(f.name)) for f in fields(Sample) if f.name != "totals")
_TOTALS_KEYS = tuple((f.name, camel(f.name)) for f in fields(Totals))
_FIELD_OF = {camel: name for name, camel in _SAMPLE_KEYS}


def mos(rtt: float | None, jitter: float | None, loss_percent: float | None) -> float | None:
    """The SDK's E-model (rtc/mos.ts): None unless all three are known non-negative numbers."""
    values = (rtt, jitter, loss_percent)
    if any(v is None or not math.isfinite(v) or v < 0 for v in values):
        return None
    assert rtt is not None and jitter is not None and loss_percent is not None
    latency = rtt + 2 * jitter + 10
    if latency < 160:
        r = 94.768 - latency / 40
    elif latency < 1000:
        r = 94.768 - (latency - 120) / 10
    else:
        r = 0.0
    r = max(r - 2.5 * loss_percent, 6.52) if loss_percent <= r / 2.5 else 0.0
    return 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)


def _delta(now: int, before: int) -> int:
    return now - before if now >= before else now  # counters restart with a new media session


def next_sample(now: Counters, before: Counters, previous: Sample | None,
                input_ticks: list[int], output_ticks: list[int], *,
                timestamp: float, echo: EchoStats | None = None) -> Sample:
    """The sample of the second between two statistics reads (``before``, ``now``) and the
    50 ms level ticks taken meanwhile; ``previous`` is the last sample (None for the first:
    no MOS yet, and rtt stays unknown until RTCP tells)."""
    lost = _delta(now.packets_lost, before.packets_lost)
    received = _delta(now.packets_received, before.packets_received)
    fraction = 100.0 * lost / (received + lost) if received + lost > 0 else 0.0
    inbound = now.packets_received + now.packets_lost
    rtt = now.rtt if now.rtt is not None or previous is None else previous.rtt
    return Sample(
        audio_input_level=round(sum(input_ticks) / len(input_ticks)) if input_ticks else 0,
        audio_output_level=round(sum(output_ticks) / len(output_ticks))
        if output_ticks else 0,
        bytes_received=_delta(now.bytes_received, before.bytes_received),
        bytes_sent=_delta(now.bytes_sent, before.bytes_sent),
        codec_name=now.codec_name,
        jitter=now.jitter,
        mos=mos(rtt, now.jitter, fraction if previous is not None else None),
        packets_lost=lost,
        packets_lost_fraction=fraction,
        packets_received=received,
        packets_sent=_delta(now.packets_sent, before.packets_sent),
        rtt=rtt,
        timestamp=timestamp,
        totals=Totals(
            bytes_received=now.bytes_received, bytes_sent=now.bytes_sent,
            packets_lost=now.packets_lost,
            packets_lost_fraction=100.0 * now.packets_lost / inbound if inbound else 100.0,
            packets_received=now.packets_received, packets_sent=now.packets_sent),
        jitter_buffer_depth=now.buffer_depth,
        jitter_buffer_target=now.buffer_target,
        frames_concealed=_delta(now.concealed, before.concealed),
        frames_late=_delta(now.late, before.late),
        echo_return_loss_enhancement=echo.echo_return_loss_enhancement if echo else None,
        residual_echo_level=echo.residual_echo_level if echo else None,
    )
