"""The running phone and its files: `piphone check` (a config, the ALSA cards, the headset),
`status`, `hangup`, `answer`, `mute`, `hold`, `swap` and `speaker` (over the control socket),
`diagram` (its state machine) and `calls` (a call log)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import paths
from ..errors import PiphoneError
from . import network_check
from .common import Subparsers

if TYPE_CHECKING:
    from ..appliance.config import AccountConfig


def add_check(sub: Subparsers) -> None:
    check = sub.add_parser("check", help="check a config; list the ALSA cards and say which "
                                         "one is the headset")
    check.add_argument("--config", type=Path,
                       help="piphone.toml: checked in full when it has [account] (exit 2 on an "
                            "error); its [audio] headset names the card (default: USB)")
    check.add_argument("--headset", help="the card to look for, instead of the config's")
    network_check.add_arguments(check)
    check.set_defaults(func=cmd_check)


def add_control(sub: Subparsers) -> None:
    for name, text in (("status", "the running phone: state, registration, call, quality"),
                       ("hangup", "hang up the running phone's call"),
                       ("answer", "answer the running phone's ringing call"),
                       ("mute", "mute or unmute the running phone's call"),
                       ("hold", "put the running phone's call on hold, or take it back (the "
                                "far end hears hold music)"),
                       ("swap", "with a call on hold (call waiting): take it back and hold "
                                "the other")):
        control = sub.add_parser(name, help=text)
        control.add_argument("--json", action="store_true", help="print the reply as JSON")
        control.set_defaults(func=cmd_control)
    speaker = sub.add_parser("speaker", help="the speaker button: move the running phone's "
                                             "call between the headset and the handsfree "
                                             "device (on an idle phone: dial on the speaker)")
    speaker.add_argument("side", nargs="?", choices=("on", "off"),
                         help="only to the speaker (on) or only to the headset (off); "
                              "default: the other one")
    speaker.add_argument("--json", action="store_true", help="print the reply as JSON")
    speaker.set_defaults(func=cmd_speaker)


def add_diagram(sub: Subparsers) -> None:
    diagram = sub.add_parser("diagram", help="draw the phone's state machine (graphviz)")
    diagram.add_argument("-o", "--output", type=Path, metavar="FILE",
                         help="FILE.svg/.png/.pdf (needs graphviz's dot) or FILE.dot; "
                              "default: DOT source on stdout")
    diagram.set_defaults(func=cmd_diagram)


def add_calls(sub: Subparsers) -> None:
    calls = sub.add_parser("calls", help="print the recent calls of a call log; --missed: the "
                                         "missed calls, --seen: mark them seen")
    calls.add_argument("--db", default=paths.CALL_LOG,
                       help=f"call log database (default {paths.CALL_LOG}; the exchange's "
                            "is its config's call_log)")
    calls.add_argument("--limit", type=int, default=20, help="calls to show (default 20)")
    calls.add_argument("--json", action="store_true", help="JSON for scripts")
    calls.add_argument("--missed", action="store_true",
                       help="only the missed calls (rang here, unanswered, not rejected); "
                            "'new' marks those not yet seen")
    calls.add_argument("--seen", action="store_true",
                       help="mark the missed calls seen: the phone's missed-calls LED goes out "
                            "(through the running phone, else in the call log itself)")
    calls.set_defaults(func=cmd_calls)


def cmd_check(args: argparse.Namespace) -> int:
    """Cards present, and the one ``audio.headset`` selects (exit 1 if none matches)."""
    network_check.check_args(args)
    if args.network:  # the preflight test instead of the cards (network_check.py)
        return network_check.run(args)
    from ..audio import devices
    from ..tomlconfig import TomlFile

    text: str = args.headset or devices.AUTO_CARD
    if args.headset is None and args.config is not None:
        toml = TomlFile(args.config)
        if "account" in toml.data:  # a whole appliance config: check all of it, as run would
            from ..appliance import config as appliance_config

            cfg = appliance_config.load(args.config)  # ConfigError: file, key, line; exit 2
            print(f"config: {args.config} is valid (identity {cfg.account.identity}, "
                  f"{len(cfg.pins.inputs)} inputs, {len(cfg.pins.leds)} LEDs)")
            for note in _twilio_notes(cfg.account):
                print(note)
            text = cfg.audio.headset
        else:
            text = toml.get("audio", "headset", str, devices.AUTO_CARD)
    spec = devices.HeadsetSpec.parse(text)
    if spec.none:
        print("headset: none (configured)")
        return 0
    cards = devices.list_cards()
    print("ALSA cards:" if cards else "ALSA cards: none (no sound card, or no sound support)")
    for card in cards:
        print(f"  {card.describe()}")
    if spec.card is None:
        print(f"headset: {text} (an ALSA device name, used as given)")
        return 0
    try:
        card = devices.select(spec.card, cards)
    except devices.AudioDeviceError as exc:
        print(f"headset: {exc}")
        return 1
    print(f"headset: {card.describe()} -> {card.device}")
    return 0


def _twilio_notes(account: AccountConfig) -> list[str]:
    """What a config of the Twilio kind (Twilio's edge, tokens minted here) means for calls."""
    if account.signaling_url is not None or not account.mints_tokens:
        return []
    if account.twiml_app_sid is None:
        notes = ["outgoing calls: Twilio will refuse them: [account] has no twiml_app_sid, so "
                 "the phone's tokens name no TwiML App, and Twilio routes a call a phone places "
                 "only through the TwiML App its token names (`piphone twilio setup` makes one)"]
    else:
        notes = [f"outgoing calls: routed by TwiML App {account.twiml_app_sid}"]
    if not account.incoming_allow:
        notes.append("incoming calls: refused (incoming_allow = false: the tokens do not let "
                     "Twilio ring this phone)")
    return notes


def cmd_control(args: argparse.Namespace, **fields: Any) -> int:
    """Talk to the running service over its control socket (appliance/control.py)."""
    import json

    from ..appliance.control import request

    reply = request(args.command, **fields)
    if args.json:
        print(json.dumps(reply, sort_keys=True))
    elif not reply.get("ok"):
        print(f"piphone: {reply.get('error')}", file=sys.stderr)
    elif args.command == "status":
        print(reply["status"])
        for key in ("state", "identity", "registered", "offline_reason", "offline_detail",
                    "peer", "peer_name", "muted", "handsfree", "dnd", "codec", "mos", "warnings",
                    "waiting", "held", "missed", "voicemail", "voicemail_messages", "volume",
                    "ringer_volume", "last_number",
                    "last_caller"):
            value = reply.get(key)
            if not value and key != "registered":
                continue  # nothing to say (a count of 0, muted False); registered False is
            print(f"  {key.replace('offline_', 'not registered, ')}: {value}")
    elif args.command == "speaker":
        side = "the speaker" if reply.get("handsfree") else "the headset"
        print(f"speaker: {reply.get('state')}, on {side}")
    else:
        print(f"{args.command}: {reply.get('state')}")
    return 0 if reply.get("ok") else 1


def cmd_speaker(args: argparse.Namespace) -> int:
    fields = {} if args.side is None else {"on": args.side == "on"}
    return cmd_control(args, **fields)


def cmd_diagram(args: argparse.Namespace) -> int:
    from ..appliance import diagram

    source = diagram.draw(args.output)
    if source is not None:
        print(source)
    else:
        print(f"wrote {args.output}")
    return 0


def cmd_calls(args: argparse.Namespace) -> int:
    import json

    from ..calllog import CallLog, format_table

    if args.limit < 1:
        raise PiphoneError(f"--limit must be at least 1, got {args.limit}")
    if args.seen and _seen_by_the_phone(args.db):
        print("missed calls: seen")
        return 0
    if not Path(args.db).exists():
        raise PiphoneError(f"{args.db}: no call log there")
    log_ = CallLog(args.db)
    try:
        if args.seen:  # no phone running on it: the log itself
            log_.mark_seen()
            print("missed calls: seen")
            return 0
        seen = log_.seen_up_to()
        records = log_.missed(limit=args.limit) if args.missed else log_.recent(args.limit)
    finally:
        log_.close()
    if args.json:
        print(json.dumps([{**r.to_dict(), "new": _new(r, seen, args.missed)} for r in records],
                         indent=2))
    elif args.missed:
        print(format_table(records, new=lambda r: bool(r.id and r.id > seen)) if records
              else "no missed calls")
    else:
        print(format_table(records) if records else "no calls yet")
    return 0


def _new(record: Any, seen: int, missed: bool) -> bool | None:
    return bool(record.id and record.id > seen) if missed else None


def _seen_by_the_phone(db: str) -> bool:
    """`calls --seen` through the running phone when ``db`` is its call log (which the
    piphone group may not write; and its LED goes out at once). False if no phone runs, or
    it keeps another log."""
    import os

    from ..appliance.control import request

    try:
        status = request("status")
        theirs = status.get("call_log")
        if not (status.get("ok") and theirs and os.path.samefile(theirs, db)):
            return False
        reply = request("seen")
    except (PiphoneError, OSError):
        return False
    if not reply.get("ok"):
        raise PiphoneError(str(reply.get("error")))
    return True
