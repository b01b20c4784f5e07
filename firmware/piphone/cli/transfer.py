"""`piphone transfer NUMBER [--attended]` and `piphone transfer --complete`: the running
phone's transfer, over its control socket (appliance/transfers.py)."""

from __future__ import annotations

import argparse

from ..errors import PiphoneError
from .common import Subparsers
from .phone import cmd_control


def add_parser(sub: Subparsers) -> None:
    transfer = sub.add_parser(
        "transfer", help="hand the running phone's call on to NUMBER and leave it (blind); "
                         "--attended: call NUMBER first, the call on hold, then --complete "
                         "joins the two")
    transfer.add_argument("number", nargs="?", help="a number, client:NAME or a contact's name")
    how = transfer.add_mutually_exclusive_group()
    how.add_argument("--attended", action="store_true",
                     help="hold the call and call NUMBER (a consultation); hanging that up "
                          "returns to the held call")
    how.add_argument("--complete", action="store_true",
                     help="join the held call and the consultation, and leave both")
    transfer.add_argument("--json", action="store_true", help="print the reply as JSON")
    transfer.set_defaults(func=cmd_transfer)


def cmd_transfer(args: argparse.Namespace) -> int:
    if args.complete != (args.number is None):
        raise PiphoneError("transfer takes a NUMBER, or --complete (and no number)")
    if args.complete:
        return cmd_control(args, complete=True)
    return cmd_control(args, number=args.number, attended=args.attended)
