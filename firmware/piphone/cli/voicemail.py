"""`piphone voicemail`: the running phone's messages at the local exchange (over the control
socket): list them, play them in the handset, skip, stop, delete one."""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from .common import Subparsers


def add_parser(sub: Subparsers) -> None:
    voicemail = sub.add_parser(
        "voicemail", help="the running phone's voicemail: list (default), play (in the "
                          "handset, newest first), next, stop, delete N",
        description="Messages callers left at the local exchange when nobody answered. "
                    "On the phone: the VOICEMAIL key plays them (the key again or # skips, "
                    "7 deletes the one playing, hanging up stops).")
    voicemail.add_argument("action", nargs="?", default="list",
                           choices=("list", "play", "next", "stop", "delete"))
    voicemail.add_argument("number", nargs="?", type=int,
                           help="delete: the message's number in the list (1: the newest)")
    voicemail.add_argument("--json", action="store_true", help="print the reply as JSON")
    voicemail.set_defaults(func=cmd_voicemail)


def cmd_voicemail(args: argparse.Namespace) -> int:
    from ..appliance.control import request

    if (args.action == "delete") != (args.number is not None):
        print("piphone: voicemail delete takes a NUMBER (and only delete does)", file=sys.stderr)
        return 2
    fields = {"action": args.action}
    if args.number is not None:
        fields["number"] = args.number
    reply = request("voicemail", **fields)
    if args.json:
        print(json.dumps(reply, sort_keys=True))
    elif not reply.get("ok"):
        print(f"piphone: {reply.get('error')}", file=sys.stderr)
    else:
        print(_listing(reply, args.action, args.number))
    return 0 if reply.get("ok") else 1


def _listing(reply: dict, action: str, number: int | None) -> str:
    messages = reply.get("messages") or []
    head = {"delete": f"message {number} deleted", "play": "playing in the handset",
            "next": "the next message", "stop": "stopped"}.get(action)
    lines = [head] if head else []
    lines.append(f"{reply.get('voicemail_messages', 0)} message(s), "
                 f"{reply.get('voicemail', 0)} new" + (f" (the exchange: {reply['mailbox_error']})"
                                                      if reply.get("mailbox_error") else ""))
    for m in messages:
        when = datetime.datetime.fromtimestamp(m["received"]).strftime("%Y-%m-%d %H:%M")
        lines.append(f"  {m['number']:>2}. {when}  {m['from']}  {m['seconds']:.0f} s"
                     + ("" if m["heard"] else "  new"))
    return "\n".join(lines)
