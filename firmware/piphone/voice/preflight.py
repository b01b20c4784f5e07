"""PreflightTest: the SDK's ``Device.runPreflight`` (preflight/preflight.ts) in Python.

A test call, placed by a Device of its own, measured and reported: events ``connected()``,
``sample(Sample)``, ``warning(PreflightWarning)``, ``completed(PreflightReport)`` and
``failed(TwilioError)``, with the SDK's names, order and report. As the SDK's, it registers,
places a call with no parameters (the token's application answers it: on Twilio, the TwiML
App; ``params`` may name the local exchange's ``echo`` line), collects the call's samples and
warnings, and when the call ends (the far end hangs up, or after ``duration``: the SDK's echo
test hangs up after 20 s) destroys the Device and reports.

Where piphone differs (README, conformance): the test always hangs up after ``duration``
(the SDK only with ``fake_mic_input``; else it waits for the TwiML App to hang up, and the
local echo line never does); ``params`` and the network options (``signaling_url``,
``ssl_context``, ``ice_addresses``) are piphone's; there is no ``insights-connection-error``
warning (piphone publishes no call events to Insights).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from ..errors import InvalidArgumentError
from ..pcm import Silence, Tone
from .call import Call
from .call_states import CallStatus
from .errors import TwilioError
from .events import Emitter
from .rtc import IceServerLike, NetworkReport
from .rtc.network import now_ms
from .rtc.tracks import AudioSource
from .samples import Sample, Totals
from .tasks import TaskSet
from .thresholds import camel

log = logging.getLogger(__name__)

ECHO_TEST_DURATION = 20.0  # s: the SDK's echo test (constants.ts ECHO_TEST_DURATION)
FAKE_MIC_HZ = 440.0  # the tone fake_mic_input sends (the SDK plays a cowbell recording)
STATS = ("jitter", "mos", "rtt")


class PreflightStatus(enum.StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    COMPLETED = "completed"
    FAILED = "failed"


class CallQuality(enum.StrEnum):
    EXCELLENT = "excellent"
    GREAT = "great"
    GOOD = "good"
    FAIR = "fair"
    DEGRADED = "degraded"


def call_quality(mos: float) -> CallQuality:
    """The SDK's rating of an average MOS (``_getCallQuality``), gaps included: its ranges
    leave out (4.0, 4.1) and (3.6, 3.7), which therefore rate ``degraded`` (README)."""
    if mos > 4.2:
        return CallQuality.EXCELLENT
    if 4.1 <= mos <= 4.2:
        return CallQuality.GREAT
    if 3.7 <= mos <= 4:
        return CallQuality.GOOD
    if 3.1 <= mos <= 3.6:
        return CallQuality.FAIR
    return CallQuality.DEGRADED


def _precision(value: float, digits: int = 5) -> float:
    """JavaScript's ``Number(x.toPrecision(5))``: five significant digits."""
    return float(f"{value:.{digits}g}")


def rtc_stats(samples: Sequence[Sample]) -> dict[str, dict[str, float]] | None:
    """min/max/average of jitter, mos and rtt over the samples from the first with a MOS
    (``_getRTCStats``); None if no sample had one. Unknown values (None) are left out, where
    the SDK would average ``null`` as 0."""
    first = next((n for n, s in enumerate(samples) if s.mos is not None and s.mos > 0), None)
    if first is None:
        return None
    stats: dict[str, dict[str, float]] = {}
    for stat in STATS:
        values = [v for v in (getattr(s, stat) for s in samples[first:]) if v is not None]
        if values:
            stats[stat] = {"average": _precision(sum(values) / len(values)),
                           "max": max(values), "min": min(values)}
    return stats


@dataclass(frozen=True)
class PreflightOptions:
    """The SDK's PreflightTest.Options (snake_case), then piphone's own."""

    codec_preferences: tuple[str, ...] = ("pcmu", "opus")  # the SDK's default order
    edge: str | tuple[str, ...] = "roaming"
    fake_mic_input: bool = False  # send a test tone instead of ``audio_source``
    signaling_timeout_ms: int = 10_000
    ice_servers: tuple[IceServerLike, ...] | None = None
    rtc_configuration: Mapping[str, Any] | None = None  # its ice_servers/iceServers count
    # piphone
    duration: float = ECHO_TEST_DURATION  # s the test call lasts at most
    params: Mapping[str, str] | None = None  # the test call's parameters (SDK: none)
    signaling_url: str | None = None  # a local exchange (else Twilio's edge)
    ssl_context: ssl.SSLContext | None = None
    ice_addresses: tuple[str, ...] | None = None
    audio_source: Callable[[], AudioSource] | None = None  # the "microphone" (default silence)

    def __post_init__(self) -> None:
        if self.duration <= 0 or self.signaling_timeout_ms <= 0:
            raise InvalidArgumentError("preflight duration and signaling_timeout_ms must be "
                                       "positive")

    @classmethod
    def of(cls, options: PreflightOptions | Mapping[str, Any] | None) -> PreflightOptions:
        if options is None:
            return cls()
        if isinstance(options, PreflightOptions):
            return options
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InvalidArgumentError(f"unknown preflight option(s) {', '.join(unknown)}; "
                                       f"known: {', '.join(sorted(known))}")
        return cls(**options)

    def ice(self) -> tuple[IceServerLike, ...]:
        rtc = self.rtc_configuration or {}
        servers = rtc.get("ice_servers", rtc.get("iceServers"))
        if servers is not None:
            return tuple(servers)
        return tuple(self.ice_servers or ())


@dataclass(frozen=True)
class PreflightWarning:
    name: str
    description: str
    rtc_warning: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.rtc_warning is not None:
            data["rtcWarning"] = _plain(self.rtc_warning)
        return data


@dataclass(frozen=True)
class PreflightReport:
    """The SDK's PreflightTest.Report (``to_dict`` gives its camelCase keys)."""

    call_sid: str | None
    edge: str | None
    selected_edge: str | None
    test_timing: Mapping[str, int]
    network_timing: Mapping[str, Mapping[str, int]]
    ice_candidate_stats: tuple[Mapping[str, Any], ...]
    samples: tuple[Sample, ...]
    warnings: tuple[PreflightWarning, ...]
    stats: Mapping[str, Mapping[str, float]] | None = None
    call_quality: CallQuality | None = None
    totals: Totals | None = None
    selected_ice_candidate_pair_stats: Mapping[str, Mapping[str, Any]] | None = None
    is_turn_required: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "callSid": self.call_sid, "edge": self.edge, "selectedEdge": self.selected_edge,
            "testTiming": dict(self.test_timing),
            "networkTiming": {k: dict(v) for k, v in self.network_timing.items()},
            "iceCandidateStats": [dict(c) for c in self.ice_candidate_stats],
            "samples": [s.to_dict() for s in self.samples],
            "warnings": [w.to_dict() for w in self.warnings],
        }
        if self.stats is not None:
            data["stats"] = {k: dict(v) for k, v in self.stats.items()}
        if self.call_quality is not None:
            data["callQuality"] = self.call_quality.value
        if self.totals is not None:
            data["totals"] = {camel(f.name): getattr(self.totals, f.name)
                              for f in fields(Totals)}
        if self.selected_ice_candidate_pair_stats is not None:
            data["selectedIceCandidatePairStats"] = {
                k: dict(v) for k, v in self.selected_ice_candidate_pair_stats.items()}
            data["isTurnRequired"] = self.is_turn_required
        return data


def build_report(*, call_sid: str | None, edge: str | None, selected_edge: str | None,
                 start: int, end: int | None, network: NetworkReport | None,
                 signaling_start: int | None, samples: Sequence[Sample],
                 warnings: Sequence[PreflightWarning]) -> PreflightReport:
    """The report (``_getReport``) from what the test collected."""
    timing: dict[str, int] = {"start": start}
    if end is not None:
        timing.update(end=end, duration=end - start)
    network_timing = {k: dict(v) for k, v in (network.timing if network else {}).items()}
    signaling = network_timing.get("signaling")
    if signaling_start is not None:  # the SDK measures signaling from connect()
        network_timing["signaling"] = signaling = dict(signaling or {}, start=signaling_start)
        if "end" in signaling:
            signaling["duration"] = signaling["end"] - signaling_start
    stats = rtc_stats(samples)
    pair = network.selected_pair if network else None
    return PreflightReport(
        call_sid=call_sid, edge=edge, selected_edge=selected_edge, test_timing=timing,
        network_timing=network_timing,
        ice_candidate_stats=network.ice_candidate_stats if network else (),
        samples=tuple(samples), warnings=tuple(warnings), stats=stats,
        call_quality=call_quality(stats["mos"]["average"]) if stats and "mos" in stats
        else None,
        totals=samples[-1].totals if samples else None,
        selected_ice_candidate_pair_stats=pair,
        is_turn_required=None if pair is None else any(
            c.get("candidateType") == "relay" for c in pair.values()))


class PreflightDevice(Protocol):
    """What the test needs of its Device (voice/device.py's; a parameter, as the SDK's
    ``deviceFactory``, so that this module and the Device's do not import each other)."""

    @property
    def edge(self) -> str | None: ...

    def on(self, event: str, f: Callable[..., Any]) -> Any: ...

    async def register(self, timeout: float = 10.0) -> None: ...

    async def connect(self, params: Mapping[str, Any] | None = None, *,
                      timeout: float = 10.0) -> Call: ...

    async def destroy(self) -> None: ...


DeviceFactory = Callable[..., PreflightDevice]


class PreflightTest(Emitter):
    """Made by ``Device.run_preflight(token, options)``; runs at once on the running loop."""

    def __init__(self, token: str,
                 options: PreflightOptions | Mapping[str, Any] | None = None, *,
                 device_factory: DeviceFactory) -> None:
        super().__init__()
        self.options = PreflightOptions.of(options)
        self._status = PreflightStatus.CONNECTING
        self._start_time = now_ms()
        self._end_time: int | None = None
        self._call_sid: str | None = None
        self._edge: str | None = None
        self._samples: list[Sample] = []
        self._warnings: list[PreflightWarning] = []
        self._report: PreflightReport | None = None
        self._network: NetworkReport | None = None
        self._signaling_start: int | None = None
        self._call: Call | None = None
        self._device: PreflightDevice | None = None
        self._error: TwilioError | None = None
        self._done = asyncio.Event()
        self._tasks = TaskSet(self)
        try:
            self._device = device_factory(token, **self._device_options())
        except TwilioError as exc:  # e.g. a token that is not a JWT (20101)
            # As the SDK: reported on the next turn, so that the caller can listen first.
            asyncio.get_running_loop().call_soon(self._fail, exc)
            return
        self._device.on("error", self._device_error)
        self._tasks.spawn(self._run(self._device))

    # --- the SDK's properties --------------------------------------------------------------
    @property
    def status(self) -> PreflightStatus:
        return self._status

    @property
    def call_sid(self) -> str | None:
        return self._call_sid

    @property
    def start_time(self) -> int:
        return self._start_time

    @property
    def end_time(self) -> int | None:
        return self._end_time

    @property
    def latest_sample(self) -> Sample | None:
        return self._samples[-1] if self._samples else None

    @property
    def report(self) -> PreflightReport | None:
        return self._report

    def stop(self) -> None:
        """End the test: ``failed`` with CallCancelledError (31008), as the SDK's."""
        if self._status in (PreflightStatus.COMPLETED, PreflightStatus.FAILED):
            return
        self._fail(TwilioError(31008, "the preflight test was stopped"))

    async def wait(self) -> PreflightReport:
        """piphone: wait for the end; the report, or the ``failed`` error raised."""
        await self._done.wait()
        if self._report is None:
            raise self._error or TwilioError(31000, "the preflight test failed")
        return self._report

    # --- the test ----------------------------------------------------------------------------
    def _device_options(self) -> dict[str, Any]:
        o = self.options
        source: Callable[[], AudioSource] = (
            (lambda: Tone(FAKE_MIC_HZ)) if o.fake_mic_input else (o.audio_source or Silence))
        options: dict[str, Any] = {
            "codec_preferences": tuple(o.codec_preferences), "ice_servers": o.ice(),
            "ice_addresses": o.ice_addresses, "audio_source": source,
            "ssl_context": o.ssl_context}
        if o.signaling_url is not None:
            options["signaling_url"] = o.signaling_url
        else:
            options["edge"] = o.edge
        return options

    async def _run(self, device: PreflightDevice) -> None:
        timeout = self.options.signaling_timeout_ms / 1000
        try:
            await device.register(timeout=timeout)
            self._signaling_start = now_ms()
            call = await device.connect(self.options.params, timeout=timeout)
        except TwilioError as exc:
            self._fail(exc)
            return
        self._call = call
        self._edge = device.edge
        self._follow(call)
        try:
            await asyncio.wait_for(call.wait_closed(), self.options.duration)
        except TimeoutError:
            if call.status() is not CallStatus.CLOSED:
                self._network = call.network_report()  # before the media closes
                call.disconnect()
                await call.wait_closed()
        await self._finish()

    def _follow(self, call: Call) -> None:
        call.on("warning", lambda name, data=None: self._warning(
            name, "Received an RTCWarning. See .rtc_warning for the RTCWarning", data))
        call.once("accept", self._connected)
        call.on("sample", self._sample)
        call.on("error", self._call_error)

    def _connected(self, call: Call) -> None:
        self._call_sid = call.call_sid
        self._network = call.network_report()  # ICE, DTLS and the connection are up
        self._status = PreflightStatus.CONNECTED
        self.emit("connected")

    def _sample(self, sample: Sample) -> None:
        if self._call is not None:
            self._network = self._call.network_report() or self._network
        self._samples.append(sample)
        self.emit("sample", sample)

    def _warning(self, name: str, description: str,
                 data: Mapping[str, Any] | None = None) -> None:
        warning = PreflightWarning(name, description, data)
        self._warnings.append(warning)
        self.emit("warning", warning)

    def _call_error(self, error: TwilioError) -> None:
        self._fail(error)

    def _device_error(self, error: TwilioError, call: Call | None = None) -> None:
        # The Device reports a failed connection attempt at every retry: register() says
        # when it gives up (53000), and a refused token ends the test at once.
        if error.code in (53000, 31005) and self._call is None:
            return
        self._fail(error)

    async def _finish(self) -> None:
        if self._status is PreflightStatus.FAILED:
            return
        await self._close_device()
        if self._error is not None:  # failed while the device closed
            return
        self._end_time = now_ms()
        self._status = PreflightStatus.COMPLETED
        self._report = build_report(
            call_sid=self._call_sid, edge=self._edge, selected_edge=_edge_name(self.options),
            start=self._start_time, end=self._end_time, network=self._network,
            signaling_start=self._signaling_start, samples=self._samples,
            warnings=self._warnings)
        self._done.set()
        self.emit("completed", self._report)

    def _fail(self, error: TwilioError) -> None:
        if self._status in (PreflightStatus.COMPLETED, PreflightStatus.FAILED):
            return
        self._end_time = now_ms()
        self._status = PreflightStatus.FAILED
        self._error = error
        log.info("preflight failed: %s", error)
        self._tasks.cancel()
        self._tasks.spawn(self._close_device()).add_done_callback(lambda _: self._done.set())
        self.emit("failed", error)

    async def _close_device(self) -> None:
        device, self._device = self._device, None
        if device is not None:
            try:
                await device.destroy()
            except Exception:  # the test's result stands whatever closing it costs
                log.exception("preflight: closing its device failed")


def _edge_name(options: PreflightOptions) -> str | None:
    if options.signaling_url is not None:
        return None
    return options.edge if isinstance(options.edge, str) else ",".join(options.edge)


def _plain(value: Any) -> Any:
    """A warning's data as JSON-able values (its samples as the SDK's sample objects)."""
    if isinstance(value, Sample):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


__all__ = ["CallQuality", "PreflightOptions", "PreflightReport", "PreflightStatus",
           "PreflightTest", "PreflightWarning", "build_report", "call_quality", "rtc_stats"]
