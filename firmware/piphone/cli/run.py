"""`piphone run`: the phone with a config; without one, a demo that suits where it runs."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from .. import paths
from .call import place_call
from .common import Subparsers


def add_parser(sub: Subparsers) -> None:
    run = sub.add_parser("run", help="run the phone; with no config, a demo on the local exchange")
    run.add_argument("--config", type=Path,
                     help=f"piphone.toml: run the appliance (default {paths.CONFIG} "
                          "if it exists, else the local exchange demo)")
    run.add_argument("--terminal", action="store_true",
                     help="the appliance with no hardware: the service on mock pins drawn in "
                          "the terminal (keys press the buttons), a local exchange, and a "
                          "caller that rings it")
    run.add_argument("--echo", action="store_true",
                     help="with no config: the plain demo (a call to the local exchange's echo "
                          "line, its events printed), also what runs when not on a terminal")
    run.add_argument("--call-every", type=float, default=5.0, metavar="S",
                     help="with --terminal: the caller rings the idle phone every S seconds")
    run.add_argument("--duration", type=float, default=None,
                     help="end the demo call after this many seconds (default: until Ctrl-C)")
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    # With a config (given, or installed in /etc/piphone) this is the appliance. Without one,
    # a demo: on a terminal the appliance itself on mock pins, answered with keys; otherwise
    # (a pipe, a script, --echo) a call to the local exchange's echo line with its events.
    path = None if args.terminal else args.config
    if path is None and not args.terminal and paths.CONFIG.exists():
        path = paths.CONFIG
    if path is not None:
        from ..appliance import service

        return service.main(path)
    if args.terminal or (not args.echo and sys.stdin.isatty() and sys.stdout.isatty()):
        from . import demo

        return asyncio.run(demo.run(call_every=args.call_every))
    return asyncio.run(run_demo(args.duration))


async def run_demo(duration: float | None, out: Callable[[str], None] | None = None) -> int:
    """The plain demo: a local exchange on loopback, and a call to its echo line."""
    from dataclasses import replace
    from typing import Any

    from ..audio.devices import HeadsetSpec
    from ..exchange import config as exchange_config
    from ..exchange.server import Exchange
    from ..voice.tokens import mint

    say = out or (lambda line: print(line, flush=True))
    with tempfile.TemporaryDirectory(prefix="piphone-demo-") as tmp:
        cfg = exchange_config.load(exchange_config.write_starter(Path(tmp) / "exchange.toml"))
        # The demo stays on this machine: loopback only, both for signaling and for ICE.
        cfg = replace(cfg, host="127.0.0.1", port=0, ice_addresses=("127.0.0.1",))
        exchange = Exchange(cfg)
        await exchange.start()
        say(f"local exchange on {exchange.url}; calling its echo line (Ctrl-C hangs up)")
        try:
            keys: dict[str, Any] = cfg.token_kwargs()
            token = mint(identity="demo", ttl=3600, **keys)
            options = {"signaling_url": exchange.url, "ice_addresses": ("127.0.0.1",)}
            return await place_call(token, {"To": "echo"}, options, 440.0, duration,
                                    read_digits=False, out=say,
                                    headset=HeadsetSpec.parse("auto").devices())
        finally:
            await exchange.close()
