"""Quality thresholds: the Twilio Voice SDK's table of limits on sample fields, the names of
the warnings they raise, and a Device's quality settings (quality.py applies them).

The same table, windows and rules as voice-sdk 2.x (statsMonitor.ts): a threshold looks at the
last ``sample_count`` samples (5 unless it says); ``raise_count`` (3) of them crossing raises
the warning, at most ``clear_count`` (0) crossing clears it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from ..errors import InvalidArgumentError

SAMPLE_COUNT_METRICS = 5  # default window (the reference; the SDK code takes its largest, 10)
SAMPLE_COUNT_RAISE = 3
SAMPLE_COUNT_CLEAR = 0
# piphone's: the echo canceller's output while the far end plays louder than this means the
# far end hears itself. The figure cannot tell echo from near-end speech over it (double
# talk), so 4 of 5 seconds must cross; seconds without far-end audio leave it as it is.
RESIDUAL_ECHO_DBFS = -40.0


@dataclass(frozen=True)
class Threshold:
    """One limit on one sample field, as the SDK's ThresholdOptions (units of the field)."""

    max: float | None = None  # raise when above
    min: float | None = None  # raise when below
    max_average: float | None = None  # raise when the window's average is above
    min_average: float | None = None
    clear_value: float | None = None  # clear an average warning only past this (else the limit)
    min_standard_deviation: float | None = None  # raise when the levels vary less than this
    sample_count: int | None = None  # window, samples (default 5)
    raise_count: int | None = None  # samples crossing to raise (default 3)
    clear_count: int | None = None  # at most this many crossing to clear (default 0)


# The SDK's DEFAULT_THRESHOLDS (audioOutputLevel's is computed there but never emitted).
SDK_THRESHOLDS: dict[str, tuple[Threshold, ...]] = {
    "audioInputLevel": (Threshold(min_standard_deviation=327.67, sample_count=10),),
    "bytesReceived": (Threshold(min=1, raise_count=3, sample_count=3, clear_count=2),),
    "bytesSent": (Threshold(min=1, raise_count=3, sample_count=3, clear_count=2),),
    "jitter": (Threshold(max=30),),
    "mos": (Threshold(min=3),),
    "packetsLostFraction": (Threshold(max=1),
                            Threshold(max_average=3, clear_value=1, sample_count=7)),
    "rtt": (Threshold(max=400),),
}
# piphone extensions (README: Call quality): sample fields and warnings the SDK does not have.
PIPHONE_THRESHOLDS: dict[str, tuple[Threshold, ...]] = {
    "residualEchoLevel": (Threshold(max=RESIDUAL_ECHO_DBFS, raise_count=4),),
}
_STAT_NAMES = {"audioInputLevel": "audio-input-level", "bytesReceived": "bytes-received",
               "bytesSent": "bytes-sent", "jitter": "jitter", "mos": "mos", "rtt": "rtt",
               "packetsLostFraction": "packet-loss", "residualEchoLevel": "residual-echo"}
_PREFIX = {"max": "high-", "max_average": "high-", "min": "low-",
           "min_standard_deviation": "constant-", "min_average": "low-"}


def warning_name(stat: str, kind: str) -> str:
    """The SDK's warning name for a stat and threshold kind (``high-packet-loss``, ...)."""
    if stat == "packetsLostFraction" and kind == "max_average":
        return "high-packets-lost-fraction"
    return _PREFIX[kind] + _STAT_NAMES[stat]


def camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


@dataclass(frozen=True)
class QualitySettings:
    """Per Device: what the quality monitor does, and its thresholds (``with_thresholds``)."""

    enabled: bool = True  # take samples and raise warnings at all
    volume_events: bool = True  # emit ``volume`` (levels are metered either way)
    sample_interval: float = 1.0  # s between samples (SDK: 1 s)
    volume_interval: float = 0.05  # s between volume events (SDK: 50 ms)
    warnings_after: float = 5.0  # s from open before any warning; also least time one stays
    one_way_audio_after: float = 10.0  # s of silence/unheard packets before one-way-audio
    silence_level: float = 1.0  # RMS (int16 units, -90 dBFS) still "digital silence"
    thresholds: Mapping[str, tuple[Threshold, ...]] = field(
        default_factory=lambda: {**SDK_THRESHOLDS, **PIPHONE_THRESHOLDS})

    def __post_init__(self) -> None:
        if self.sample_interval <= 0 or self.volume_interval <= 0:
            raise InvalidArgumentError("quality intervals must be positive")
        unknown = set(self.thresholds) - set(_STAT_NAMES)
        if unknown:
            raise InvalidArgumentError(f"no thresholds for {sorted(unknown)}; "
                                       f"known: {', '.join(sorted(_STAT_NAMES))}")

    def with_thresholds(self, **stats: Threshold | tuple[Threshold, ...]) -> QualitySettings:
        """Replace the thresholds of some stats (by the SDK's camelCase names), as the SDK's
        ``{...DEFAULT_THRESHOLDS, ...options.thresholds}`` does."""
        merged = dict(self.thresholds)
        for stat, value in stats.items():
            merged[stat] = (value,) if isinstance(value, Threshold) else tuple(value)
        return replace(self, thresholds=merged)
