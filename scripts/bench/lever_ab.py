#!/usr/bin/env python3
"""A lever against the version before it: two piphone clients in one window, a ratio.

The client of git revision BASE and the client of the work tree each call the exchange's echo
line (call_cost.py's piphone client: 440 Hz tone, Opus, quality monitor on), at the same time,
and are measured over the same window, so the load on a shared machine weighs on both alike.
Repeated ``--repeat`` times (who starts first alternates); prints each run's CPU ratio
(work tree / base), RSS and private memory, and the range of the ratios. Then the start-up:
``import piphone.voice`` (what the phone service imports before it is READY), timed
alternately from each tree, and the RSS after that import.

Usage:  .venv/bin/python scripts/bench/lever_ab.py --base HEAD~1 [--new REV] [--repeat 3]
                                                   [--seconds 10] [--wav speech.wav]
A speech file for --wav: ``espeak-ng -w speech.wav "some sentences"`` (apt install espeak-ng).

Runs under `unshare -n` like the other benches (call_cost.py's helpers).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402
import call_cost  # noqa: E402

REPO = call_cost.REPO


def export_firmware(rev: str, into: Path) -> Path:
    """``firmware/`` as it is at ``rev``, unpacked under ``into``; returns its path."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "firmware"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "firmware"


def one_window(opts: call_cost.Options, trees: dict[str, Path], first: str,
               wav: str | None = None) -> dict[str, tuple[common.Usage, float]]:
    """Both clients in one call window; per tree: its usage and seconds from spawn to READY."""
    with call_cost.running_exchange(opts) as (config, url, exchange, env):
        order = [first] + [t for t in trees if t != first]
        procs, started, ready = {}, {}, {}
        for name in order:
            started[name] = time.monotonic()
            procs[name] = call_cost.spawn_worker(
                dict(env, PYTHONPATH=str(trees[name])), "piphone-client", "--config",
                str(config), "--url", url, "--identity", f"bench-{name}",
                *(["--wav", wav] if wav else []))
        for name in order:
            common.wait_for_line(procs[name], lambda s: s == call_cost.READY, opts.timeout,
                                 f"{name} call")
            ready[name] = time.monotonic() - started[name]
        time.sleep(opts.warmup)
        usage = common.measure([procs[n].pid for n in order], opts.seconds,
                               alive=lambda: call_cost.procs_alive(*procs.values(), exchange))
    return {name: (u, ready[name]) for name, u in zip(order, usage, strict=True)}


def import_cost(tree: Path) -> tuple[float, float]:
    """Seconds to ``import piphone.voice`` in a fresh interpreter, and its RSS after (MB)."""
    code = ("import time, re; t = time.perf_counter(); import piphone.voice; "
            "d = time.perf_counter() - t; "
            "print(d, int(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read())"
            ".group(1)) / 1024)")
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(tree)},
                         capture_output=True, text=True, check=True, timeout=60).stdout
    seconds, rss = out.split()
    return float(seconds), float(rss)


def span(values: list[float], fmt: str) -> str:
    return (f"{fmt.format(min(values))}-{fmt.format(max(values))} "
            f"(median {fmt.format(statistics.median(values))})")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare against")
    parser.add_argument("--new", help="git revision to measure (default: the work tree), so "
                        "that work can go on in the tree while a lever is measured")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--imports", type=int, default=5, help="import timings per tree")
    parser.add_argument("--wav", help="clients send this WAV file's speech (looped), not a "
                        "440 Hz tone: libopus codes a tone as music, at a third of speech's cost")
    args = parser.parse_args(argv)
    common.ensure_isolated_network([str(Path(__file__).resolve()), *argv])
    common.install_signal_cleanup()
    opts = call_cost.Options(args.seconds, args.warmup, args.timeout)
    with tempfile.TemporaryDirectory(prefix="bench-lever-") as tmp:
        trees = {"base": export_firmware(args.base, Path(tmp) / "base"),
                 "new": (export_firmware(args.new, Path(tmp) / "new") if args.new
                         else REPO / "firmware")}
        ratios: list[float] = []
        mem: dict[str, list[tuple[float, float]]] = {"base": [], "new": []}
        ready: dict[str, list[float]] = {"base": [], "new": []}
        print(f"A/B: {args.new or 'work tree'} (new) against {args.base} (base), "
              f"{args.seconds:.0f} s windows")
        for run in range(args.repeat):
            first = "base" if run % 2 == 0 else "new"
            try:
                result = one_window(opts, trees, first,
                                    str(Path(args.wav).resolve()) if args.wav else None)
            except Exception as exc:
                print(f"  run {run + 1}: failed: {exc}")
                continue
            (b, rb), (n, rn) = result["base"], result["new"]
            ratios.append(n.cpu_per_s / b.cpu_per_s)
            for name, u in (("base", b), ("new", n)):
                mem[name].append((u.rss_mb, u.private_mb))
            ready["base"].append(rb)
            ready["new"].append(rn)
            print(f"  run {run + 1}: base {b.cpu_per_s:.4f} CPU-s/s {b.rss_mb:.1f} MB RSS "
                  f"{b.private_mb:.1f} private; new {n.cpu_per_s:.4f} {n.rss_mb:.1f} "
                  f"{n.private_mb:.1f}; new/base CPU {ratios[-1]:.2f}x", flush=True)
        if ratios:
            print(f"CPU new/base: {span(ratios, '{:.2f}')}x over {len(ratios)} windows")
            for name in ("base", "new"):
                print(f"  {name}: RSS {span([m[0] for m in mem[name]], '{:.1f}')} MB, "
                      f"private {span([m[1] for m in mem[name]], '{:.1f}')} MB, "
                      f"spawn to call READY {span(ready[name], '{:.2f}')} s")
        times: dict[str, list[float]] = {"base": [], "new": []}
        rss: dict[str, list[float]] = {"base": [], "new": []}
        for _ in range(args.imports):
            for name in ("base", "new"):
                seconds, mb = import_cost(trees[name])
                times[name].append(seconds)
                rss[name].append(mb)
        for name in ("base", "new") if args.imports > 0 else ():
            print(f"import piphone.voice, {name}: {span(times[name], '{:.3f}')} s, "
                  f"RSS {span(rss[name], '{:.1f}')} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
