"""Credentials: `piphone token` (an access token, from the exchange's key or a phone's Twilio
API key) and `piphone twilio setup` (a Twilio account made ready for this phone)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import PiphoneError
from .common import Subparsers


def add_token(sub: Subparsers) -> None:
    tok = sub.add_parser("token", help="print an access token (the exchange's, or Twilio's with "
                                       "a phone's piphone.toml)")
    tok.add_argument("--config", type=Path, required=True,
                     help="exchange.toml, or a phone's piphone.toml (its Twilio account, API key "
                          "and TwiML App)")
    tok.add_argument("--identity", help="required with exchange.toml (default: the phone's)")
    tok.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600, at most "
                                                          "86400)")
    tok.add_argument("--twiml-app-sid", metavar="AP...",
                     help="the TwiML App that routes the holder's outgoing calls on Twilio (the "
                          "Voice grant's outgoing_application_sid; default: the piphone.toml's)")
    tok.add_argument("--no-incoming", action="store_true",
                     help="a token that receives no calls (the Voice grant's incoming.allow false)")
    tok.add_argument("--out", type=Path, metavar="FILE",
                     help="write the token to FILE (mode 0600) for --token-file, not to stdout")
    tok.set_defaults(func=cmd_token)


def add_twilio(sub: Subparsers) -> None:
    twilio = sub.add_parser("twilio", help="set up a Twilio account for this phone")
    twilio_sub = twilio.add_subparsers(dest="twilio_command", required=True)
    setup = twilio_sub.add_parser(
        "setup", help="make this phone a Twilio client: a Function that answers its calls, a "
                      "TwiML App, its number, an API key, and its config (credentials from "
                      "TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN, else asked)")
    setup.add_argument("--config", type=Path, default=paths.CONFIG,
                       help=f"piphone.toml to write, secrets.toml beside it (default "
                            f"{paths.CONFIG})")
    setup.add_argument("--identity", help="the phone's client identity (default: the config's, "
                                          "else this machine's host name)")
    setup.add_argument("--number", metavar="+E164",
                       help="which of the account's numbers rings the phone and is its caller "
                            "ID (default: the account's only one); a verified caller ID gives "
                            "a phone that only calls out")
    setup.add_argument("--dry-run", action="store_true",
                       help="print what it would create or reuse; change nothing")
    setup.add_argument("--force", action="store_true",
                       help="replace config files it did not write (other sections are kept)")
    setup.set_defaults(func=cmd_twilio_setup)


def cmd_token(args: argparse.Namespace) -> int:
    from ..tomlconfig import TomlFile, sid
    from ..voice.tokens import mint

    if args.twiml_app_sid is not None and (problem := sid("AP")(args.twiml_app_sid)):
        raise PiphoneError(f"--twiml-app-sid {problem}")
    app_sid, incoming = args.twiml_app_sid, not args.no_incoming
    if "account" in TomlFile(args.config).data:  # a phone's piphone.toml: a Twilio token
        from ..appliance import config as appliance_config

        account = appliance_config.load(args.config).account
        if not account.mints_tokens:
            raise PiphoneError(f"{args.config}: its secrets hold a fixed token, not an API key "
                               "secret to mint one with")
        identity = args.identity or account.identity
        app_sid = app_sid or account.twiml_app_sid
        incoming = incoming and account.incoming_allow
        keys: dict[str, Any] = {"account_sid": account.account_sid,
                                "api_key_sid": account.api_key_sid,
                                "api_key_secret": account.api_key_secret}
    else:
        from ..exchange import config as exchange_config

        if args.identity is None:
            raise PiphoneError("token --config exchange.toml needs --identity")
        identity, keys = args.identity, exchange_config.load(args.config).token_kwargs()
    _emit_token(mint(identity=identity, ttl=args.ttl, outgoing_application_sid=app_sid,
                     incoming_allow=incoming, **keys), args.out)
    return 0


def cmd_twilio_setup(args: argparse.Namespace) -> int:
    from .. import twilio_setup
    from .phone import cmd_check

    logging.getLogger("twilio").setLevel(logging.WARNING)  # the helper logs each request
    options = twilio_setup.Options(config=args.config, identity=args.identity,
                                   number=args.number, dry_run=args.dry_run, force=args.force)
    path = twilio_setup.run(options, twilio_setup.read_credentials())
    if path is None:
        return 0
    print(f"\n$ piphone check --config {path}", flush=True)
    if cmd_check(argparse.Namespace(config=path, headset=None, network=False,
                                    json=False, duration=20.0)) == 1:
        print("setup is done; the phone needs its headset before `piphone run` (see above)")
    return 0


def _emit_token(token: str, out: Path | None) -> None:
    if out is None:
        print(token)
        return
    from ..tomlconfig import write_private

    write_private(out, token + "\n")
    print(f"wrote {out} (mode 0600): `piphone call ... --token-file {out}`")
