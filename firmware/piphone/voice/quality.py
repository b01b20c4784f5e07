"""Call quality: ``sample`` every second, ``volume`` every 50 ms, ``warning``/``warning-cleared``.

This mirrors the Twilio Voice SDK's StatsMonitor and Call (voice-sdk 2.x: statsMonitor.ts,
call.ts, rtc/mos.ts): the same sample fields and units, the same E-model MOS, the same
threshold table, windows and rules, the same warning names:

- a sample is taken every second from the media session's counters (read through the media
  port, rtc/ports.py) and the call's level meters (samples.py makes it); per-second figures
  are differences of cumulative counters, ``packetsLostFraction`` is the percent of this
  second's inbound packets that were lost, ``jitter`` is in ms (aiortc counts RTP clock
  units), ``rtt`` comes from RTCP (None until known, then the last known value), ``mos`` is
  None on the first sample;
- a threshold (thresholds.py) looks at the last ``sample_count`` samples (5 unless it says):
  ``raise_count`` (3) of them crossing raises the warning, at most ``clear_count`` (0)
  crossing clears it; warnings are off for the first 5 s of a call and a raised warning stays
  at least 5 s;
- ``constant-audio-input-level`` is not raised while muted; ``ice-connectivity-lost`` follows
  the ICE state (raised on ``disconnected``, cleared when connected again). aiortc has no
  ``disconnected`` state: the call reports media lost (reconnecting with 53405, when no RTP
  came for the watchdog's timeout, reconnect.py) as ``disconnected`` and ``reconnected`` as
  ``connected``, as the SDK raises the warning just before its media reconnection.

The monitor emits on the call: ``sample(Sample)``, ``volume(input, output)``,
``warning(name, data)``, ``warning-cleared(name)``; the call also emits ``feedback(score,
issue)`` when ``post_feedback`` is called (calllog.py keeps it).

piphone extensions (not in the SDK; see README):

- ``one-way-audio``: packets arrive but the decoded far-end audio has been digital silence for
  10 s while we are not muted (``direction: "receive"``), or we send packets but the far end's
  RTCP receiver reports show none of them arriving for 10 s (``direction: "send"``);
- conditions set from outside with ``Call.set_condition`` (``audio-device-lost``), raised and
  cleared at once, with no warm-up;
- with an echo canceller on the microphone (``echo``: the port the appliance wires to its
  capture stage), ``echoReturnLossEnhancement`` and ``residualEchoLevel`` in each sample, and
  ``high-residual-echo`` when the residual stays above ``RESIDUAL_ECHO_DBFS``
  (thresholds.py); cleared at once when the call leaves the canceller (``echo`` gives None).
"""

from __future__ import annotations

import asyncio
import logging
import math
import operator
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import InvalidArgumentError
from ..pcm import LevelReading, level, volume
from .rtc.ports import Counters, MediaPort
from .samples import EchoStats, Sample, Totals, mos, next_sample
from .tasks import TaskSet
from .thresholds import (
    SAMPLE_COUNT_CLEAR,
    SAMPLE_COUNT_METRICS,
    SAMPLE_COUNT_RAISE,
    SDK_THRESHOLDS,
    QualitySettings,
    Threshold,
    camel,
    warning_name,
)

__all__ = ["SDK_THRESHOLDS", "Counters", "QualityMonitor", "QualitySettings", "Sample",
           "Threshold", "Totals", "media_counters", "mos", "warning_name"]

log = logging.getLogger(__name__)

# A max threshold is crossed above it, a min one below it.
_CROSSINGS: tuple[tuple[str, Callable[[Any, Any], bool]], ...] = (
    ("max", operator.gt), ("min", operator.lt))
CONDITIONS = ("audio-device-lost",)  # set_condition names (piphone extension)
ONE_WAY_AUDIO = "one-way-audio"
ICE_LOST = "ice-connectivity-lost"
RESIDUAL_ECHO = warning_name("residualEchoLevel", "max")


async def media_counters(session: MediaPort) -> Counters:
    """The statistics of a media session, read through its port (rtc.ports.MediaPort)."""
    return await session.counters()


# --- the monitor ---------------------------------------------------------------------------
class QualityMonitor:
    """Samples one call and raises its warnings; ``start`` at open, ``stop`` at close.

    The call provides: ``read_counters`` (None while there is no media), ``meters`` (the
    current session's (sent, heard) level meters, or None), ``is_muted`` and ``emit``;
    ``echo``, where the microphone has an echo canceller: its last second (None: none now).
    """

    def __init__(self, settings: QualitySettings, *,
                 read_counters: Callable[[], Awaitable[Counters | None]],
                 meters: Callable[[], tuple[LevelReading, LevelReading] | None],
                 is_muted: Callable[[], bool],
                 emit: Callable[..., Any],
                 echo: Callable[[], EchoStats | None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._read_counters = read_counters
        self._meters = meters
        self._is_muted = is_muted
        self._emit = emit
        self._echo = echo
        self._clock = clock
        self._wall_clock = wall_clock
        windows = [t.sample_count or SAMPLE_COUNT_METRICS
                   for ts in settings.thresholds.values() for t in ts]
        self.samples: deque[Sample] = deque(maxlen=max([SAMPLE_COUNT_METRICS, *windows]))
        self._levels_window: deque[list[int]] = deque(
            maxlen=max([t.sample_count or 0 for t in settings.thresholds.get(
                "audioInputLevel", ())] + [1]))  # per sample: its 50 ms input levels
        self._input_ticks: list[int] = []
        self._output_ticks: list[int] = []
        self._output_loudest = 0.0  # largest heard RMS since the last sample
        self._previous: Counters | None = None
        self._started: float | None = None
        self._active: dict[str, float] = {}  # warning name -> clock when raised
        self.raised: list[str] = []  # every warning name raised in this call, in order
        self.mos_values: list[float] = []
        self._silent_for = 0.0  # s of digital silence heard while packets arrive
        self._unheard_for = 0.0  # s of sending with the far end receiving nothing
        self._far_received: int | None = None
        self._stopped = False
        self._tasks = TaskSet(self)

    # --- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self._started is not None or not self.settings.enabled:
            return
        self._started = self._clock()
        self._tasks.spawn(self._every(self.settings.sample_interval, self.sample_tick))

    def stop(self) -> None:
        self._tasks.cancel()
        self._stopped = True

    def audio_clock(self) -> None:
        """Called every 50 ms of audio sent (the input meter's ticks): a ``volume`` event.

        The audio wakes the loop every 20 ms anyway; a timer of its own would wake it 20 more
        times a second, which cost about ten times the metering (scripts/bench/quality_cost.py).
        """
        if self._started is None or self._stopped:
            return
        try:
            self.volume_tick()
        except Exception:  # on the media path: never let it break sending
            log.exception("quality volume_tick failed")

    async def _every(self, interval: float, tick: Callable[[], Any]) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += interval
            await asyncio.sleep(max(0.0, due - loop.time()))  # a timer, not a wait for news
            try:
                result = tick()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # one bad read must not end the monitor
                log.exception("quality %s failed", getattr(tick, "__name__", tick))

    @property
    def active(self) -> list[str]:
        return list(self._active)

    @property
    def mos_average(self) -> float | None:
        return sum(self.mos_values) / len(self.mos_values) if self.mos_values else None

    @property
    def mos_minimum(self) -> float | None:
        return min(self.mos_values) if self.mos_values else None

    # --- volume ----------------------------------------------------------------------------
    def volume_tick(self) -> tuple[float, float]:
        meters = self._meters()
        sent, heard = (meters[0].read(), meters[1].read()) if meters else (0.0, 0.0)
        self._input_ticks.append(level(sent))
        self._output_ticks.append(level(heard))
        if heard > self._output_loudest:
            self._output_loudest = heard
        volumes = volume(sent), volume(heard)
        if self.settings.volume_events:
            self._emit("volume", *volumes)
        return volumes

    # --- samples ---------------------------------------------------------------------------
    async def sample_tick(self) -> Sample | None:
        counters = await self._read_counters()
        if counters is None:
            return None
        sample = self.add_sample(counters)
        self._emit("sample", sample)
        return sample

    def add_sample(self, now: Counters) -> Sample:
        """Turn one statistics read into a sample, keep it and raise or clear warnings."""
        before = self._previous or Counters()
        previous = self.samples[-1] if self.samples else None
        self._previous = now
        input_ticks, self._input_ticks = self._input_ticks, []
        output_ticks, self._output_ticks = self._output_ticks, []
        loudest, self._output_loudest = self._output_loudest, 0.0
        self._levels_window.append(input_ticks)
        echo = self._echo() if self._echo is not None else None
        sample = next_sample(now, before, previous, input_ticks, output_ticks,
                             timestamp=self._wall_clock() * 1000, echo=echo)
        self.samples.append(sample)
        if sample.mos is not None:
            self.mos_values.append(sample.mos)
        self._track_one_way(sample, loudest, now.far_received, heard=bool(output_ticks))
        if self._warnings_on():
            for stat, limits in self.settings.thresholds.items():
                for limit in limits:
                    self._check(stat, limit)
            self._check_one_way()
        if echo is None:  # no canceller (any more): nothing can say there is echo
            self.clear_warning(RESIDUAL_ECHO, at_once=True)
        return sample

    def _warnings_on(self) -> bool:
        return (self._started is not None
                and self._clock() - self._started >= self.settings.warnings_after)

    def _check(self, stat: str, limit: Threshold) -> None:
        """One threshold over its window, as StatsMonitor._raiseWarningsForStat."""
        count = limit.sample_count or SAMPLE_COUNT_METRICS
        window = list(self.samples)[-count:]
        values = [s.get(stat) for s in window]
        if any(v is None for v in values):
            return  # not enough known to raise or clear
        raise_count = limit.raise_count or SAMPLE_COUNT_RAISE
        clear_count = limit.clear_count or SAMPLE_COUNT_CLEAR
        for kind, crossing in _CROSSINGS:
            threshold = getattr(limit, kind)
            if threshold is None:
                continue
            crossed = sum(1 for v in values if crossing(v, threshold))
            data = {"name": stat, "values": values, "samples": window,
                    "threshold": {"name": kind, "value": threshold}}
            if crossed >= raise_count:
                self.raise_warning(warning_name(stat, kind), data)
            elif crossed <= clear_count:
                self.clear_warning(warning_name(stat, kind))
        if limit.min_standard_deviation is not None:
            self._check_deviation(stat, limit, count)
        for kind, above in (("max_average", True), ("min_average", False)):
            threshold = getattr(limit, kind)
            if threshold is None or len(values) < count:
                continue
            average = sum(values) / len(values)
            clear_at = limit.clear_value if limit.clear_value is not None else threshold
            data = {"name": stat, "values": values, "samples": window,
                    "threshold": {"name": camel(kind), "value": threshold}}
            if (average > threshold) if above else (average < threshold):
                self.raise_warning(warning_name(stat, kind), data)
            elif not ((average > clear_at) if above else (average < clear_at)):
                self.clear_warning(warning_name(stat, kind))

    def _check_deviation(self, stat: str, limit: Threshold, count: int) -> None:
        if stat != "audioInputLevel" or len(self._levels_window) < count:
            return
        name = warning_name(stat, "min_standard_deviation")
        if self._is_muted():  # constant silence is what muting means
            return
        levels = [v for ticks in list(self._levels_window)[-count:] for v in ticks]
        if not levels:
            return
        mean = sum(levels) / len(levels)
        deviation = math.sqrt(sum((v - mean) ** 2 for v in levels) / len(levels))
        assert limit.min_standard_deviation is not None
        if deviation < limit.min_standard_deviation:
            self.raise_warning(name, {
                "name": stat, "value": deviation,
                "values": [s.audio_input_level for s in list(self.samples)[-count:]],
                "samples": list(self.samples)[-count:],
                "threshold": {"name": "minStandardDeviation",
                              "value": limit.min_standard_deviation}})
        else:
            self.clear_warning(name)

    # --- one-way audio (extension) ---------------------------------------------------------
    def _track_one_way(self, sample: Sample, loudest: float, far: int | None,
                       heard: bool) -> None:
        """``heard``: levels came in this second; unmetered media (the exchange's legs)
        cannot tell silence."""
        step = self.settings.sample_interval
        silent = (heard and not self._is_muted() and sample.packets_received > 0
                  and loudest <= self.settings.silence_level)
        self._silent_for = self._silent_for + step if silent else 0.0
        unheard = sample.packets_sent > 0 and (far is None or far == self._far_received)
        self._unheard_for = self._unheard_for + step if unheard else 0.0
        self._far_received = far

    def _check_one_way(self) -> None:
        limit = self.settings.one_way_audio_after - 1e-6
        direction = ("receive" if self._silent_for >= limit
                     else "send" if self._unheard_for >= limit else None)
        if direction is None:
            self.clear_warning(ONE_WAY_AUDIO)
            return
        count = max(1, round(self.settings.one_way_audio_after / self.settings.sample_interval))
        window = list(self.samples)[-count:]
        self.raise_warning(ONE_WAY_AUDIO, {
            "name": ONE_WAY_AUDIO, "direction": direction,
            "values": [s.audio_output_level if direction == "receive" else s.packets_sent
                       for s in window],
            "samples": window,
            "threshold": {"name": "maxDuration", "value": self.settings.one_way_audio_after}})

    # --- raising and clearing --------------------------------------------------------------
    def raise_warning(self, name: str, data: dict[str, Any] | None = None) -> bool:
        if name in self._active:
            return False
        self._active[name] = self._clock()
        if name not in self.raised:
            self.raised.append(name)
        log.info("quality warning %s", name)
        self._emit("warning", name, data)
        return True

    def clear_warning(self, name: str, *, at_once: bool = False) -> bool:
        raised_at = self._active.get(name)
        if raised_at is None:
            return False
        if not at_once and self._clock() - raised_at < self.settings.warnings_after:
            return False  # the SDK keeps a warning at least WARNING_TIMEOUT (5 s)
        del self._active[name]
        log.info("quality warning %s cleared", name)
        self._emit("warning-cleared", name)
        return True

    def media_state(self, state: str) -> None:
        """The media connection's state: ICE ``disconnected`` raises ice-connectivity-lost."""
        if state == "disconnected":
            self.raise_warning(ICE_LOST, {"name": ICE_LOST})
        elif state == "connected":
            self.clear_warning(ICE_LOST, at_once=True)

    def set_condition(self, name: str, active: bool, data: dict[str, Any] | None = None) -> None:
        """Raise or clear an outside condition (``audio-device-lost``) at once."""
        if name not in CONDITIONS:
            raise InvalidArgumentError(
                f"unknown condition {name!r}; one of {', '.join(CONDITIONS)}")
        if active:
            self.raise_warning(name, {"name": name, **(data or {})})
        else:
            self.clear_warning(name, at_once=True)
