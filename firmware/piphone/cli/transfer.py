"""`piphone transfer NUMBER [--attended]`, `piphone transfer --complete` and `piphone
conference`: the running phone's transfer and conference, over its control socket
(appliance/transfers.py)."""

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
    conference = sub.add_parser("conference", help="with a call on hold: the held call and "
                                                   "this one talk together, three ways (on the "
                                                   "local exchange)")
    conference.add_argument("--json", action="store_true", help="print the reply as JSON")
    conference.set_defaults(func=cmd_control)


def cmd_transfer(args: argparse.Namespace) -> int:
    if args.complete != (args.number is None):
        raise PiphoneError("transfer takes a NUMBER, or --complete (and no number)")
    if args.complete:
        return cmd_control(args, complete=True)
    return cmd_control(args, number=args.number, attended=args.attended)
