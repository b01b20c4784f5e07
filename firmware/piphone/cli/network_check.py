"""`piphone check --network`: the SDK's preflight test (voice/preflight.py) with the phone's
own config: its token, its exchange or Twilio edge, its ICE settings and codecs. The test call
goes to the local exchange's echo line, or on Twilio to the phone's TwiML App with no
parameters, as the SDK's test call (the Function of `piphone twilio setup` echoes it). It
sends a test tone (the SDK's ``fake_mic_input``): the headset stays with the running phone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import paths

if TYPE_CHECKING:
    from ..voice.preflight import PreflightReport

LOCAL_ECHO = {"To": "echo"}  # the local exchange's echo line (its starter config's name)


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    """0 if the test completed, 1 if it failed (a line says why); ConfigError exits 2."""
    from ..appliance import config as appliance_config
    from ..appliance.network import device_network

    path = Path(args.config or paths.CONFIG)
    cfg = appliance_config.load(path)  # ConfigError: file, key, line
    account = cfg.account
    options: dict[str, Any] = device_network(account)
    edge = options.pop("edge", None)
    if edge is not None:
        options["edge"] = edge if len(edge) > 1 else edge[0]
    options["codec_preferences"] = tuple(options["codec_preferences"])
    options["ice_servers"] = tuple(options["ice_servers"])
    if options.get("ice_addresses") is not None:
        options["ice_addresses"] = tuple(options["ice_addresses"])
    options.update(fake_mic_input=True, duration=args.duration,
                   params=LOCAL_ECHO if account.signaling_url else None)
    where = account.signaling_url or f"Twilio edge {','.join(account.edge)}"
    line = "the echo line" if account.signaling_url else "the TwiML App"
    if not args.json:
        out(f"network check: {account.identity} -> {where}, a test call of "
            f"{args.duration:g} s to {line}")
    return asyncio.run(_run(account.access_token(), options, args.json, out))


async def _run(token: str, options: dict[str, Any], as_json: bool,
               out: Callable[[str], None]) -> int:
    from ..voice import Device
    from ..voice.errors import TwilioError

    test = Device.run_preflight(token, options)
    if not as_json:
        test.on("connected", lambda: out("  connected; measuring..."))
        test.on("warning", lambda w: out(f"  warning: {w.name}"))
    try:
        report = await test.wait()
    except TwilioError as error:
        if as_json:
            out(json.dumps({"status": "failed", "error": {
                "code": error.code, "name": error.name, "message": error.message}}))
        else:
            out(f"network check failed: {error.name} ({error.code}): {error.message}")
        return 1
    if as_json:
        out(json.dumps({"status": "completed", "report": report.to_dict()}, indent=2))
    else:
        for line in describe(report):
            out(line)
    return 0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _timing(timing: Mapping[str, Mapping[str, int]], name: str) -> str:
    duration = timing.get(name, {}).get("duration")
    return "-" if duration is None else f"{duration} ms"


def describe(report: PreflightReport) -> list[str]:
    """The report as a maker reads it: the rating with its numbers, then the details."""
    lines = []
    stats = report.stats or {}
    mos = stats.get("mos")
    if report.call_quality is None or mos is None:
        lines.append("call quality: unknown (the call was too short for a MOS)")
    else:
        lines.append(f"call quality: {report.call_quality.value} (MOS {mos['average']:.2f} "
                     f"average, {mos['min']:.2f} to {mos['max']:.2f})")
    for name, label in (("rtt", "round trip"), ("jitter", "jitter")):
        stat = stats.get(name)
        if stat is not None:
            lines.append(f"  {label}: {_ms(stat['average'])} average ({_ms(stat['min'])} to "
                         f"{_ms(stat['max'])})")
    totals = report.totals
    if totals is not None:
        lines.append(f"  packets: {totals.packets_sent} sent, {totals.packets_received} "
                     f"received, {totals.packets_lost} lost "
                     f"({totals.packets_lost_fraction:.1f} %)")
    timing = report.network_timing
    lines.append(f"  set-up: signaling {_timing(timing, 'signaling')}, ICE "
                 f"{_timing(timing, 'ice')}, DTLS {_timing(timing, 'dtls')}, peer connection "
                 f"{_timing(timing, 'peerConnection')}")
    pair = report.selected_ice_candidate_pair_stats
    if pair is not None:
        local, remote = pair["localCandidate"], pair["remoteCandidate"]
        lines.append(f"  media path: {local.get('candidateType')} {local.get('address')}:"
                     f"{local.get('port')} -> {remote.get('candidateType')} "
                     f"{remote.get('address')}:{remote.get('port')} (TURN "
                     f"{'required' if report.is_turn_required else 'not required'})")
    if report.edge:
        lines.append(f"  edge: {report.edge}")
    if report.call_sid:
        lines.append(f"  call: {report.call_sid}")
    names = list(dict.fromkeys(w.name for w in report.warnings))
    lines.append(f"  warnings: {', '.join(names) if names else 'none'}")
    return lines


def add_arguments(check: argparse.ArgumentParser) -> None:
    check.add_argument("--network", action="store_true",
                       help="place a test call (the SDK's preflight test) with the config's "
                            "token and network settings and report its quality; exit 1 if it "
                            f"fails (default config {paths.CONFIG})")
    check.add_argument("--json", action="store_true", help="with --network: the SDK's report "
                                                           "as JSON, for scripts")
    check.add_argument("--duration", type=float, default=20.0, metavar="SECONDS",
                       help="with --network: how long the test call lasts (default 20, as "
                            "the SDK's echo test)")


def check_args(args: argparse.Namespace) -> None:
    from ..errors import PiphoneError

    if args.json and not args.network:
        raise PiphoneError("--json goes with --network")
    if args.network and not 2 <= args.duration <= 300:
        raise PiphoneError(f"--duration takes 2 to 300 seconds, got {args.duration:g}")
    if args.network and args.headset is not None:
        raise PiphoneError("--network sends a test tone; --headset does not go with it")
