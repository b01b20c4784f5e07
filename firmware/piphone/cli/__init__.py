"""`piphone`: run the phone or the local exchange, and drive the running phone from a shell.

Each subcommand builds what it needs from its arguments and config, runs, and returns an exit
status; ``main(argv)`` is what tests call. One module per group of subcommands: run.py
(``run``), call.py (``call``), phone.py (``check``, ``status``, ``hangup``, ``answer``,
``mute``, ``diagram``, ``calls``; ``check --network`` in network_check.py), transfer.py
(``transfer``, ``conference``), voicemail.py (``voicemail``), keys.py (``token``, ``twilio
setup``) and exchange.py (``exchange``; its options and admin actions are in
piphone/cli_exchange.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .. import __version__, logsafe
from ..errors import PiphoneError
from . import call, exchange, keys, phone, run, transfer, voicemail

log = logging.getLogger("piphone")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO,
        handlers=[logsafe.handler(sys.stderr)],  # one escaped, bounded line per record
    )
    if not args.verbose:  # their per-connection (per-request) chatter drowns the call's events
        for noisy in ("aioice", "websockets", "twilio.http_client"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        result: int = args.func(args)
        return result
    except PiphoneError as exc:
        print(f"piphone: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="piphone", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--version", action="version", version=f"piphone {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True)
    run.add_parser(sub)
    exchange.add_parser(sub)
    phone.add_check(sub)
    keys.add_token(sub)
    call.add_parser(sub)
    phone.add_control(sub)
    transfer.add_parser(sub)
    phone.add_diagram(sub)
    keys.add_twilio(sub)
    phone.add_calls(sub)
    voicemail.add_parser(sub)
    return parser
