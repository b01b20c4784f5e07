"""`piphone twilio setup`: a Twilio account becomes a ringing desk phone in one command.

A tool beside the phone, not part of it: from the account's SID and auth token (never stored,
never printed), with Twilio's own helper, it makes or reuses what the phone needs (a protected
Function that answers its calls, a TwiML App for the calls it places, its number pointed at
the Function, an API key), then writes piphone.toml and secrets.toml. ``plan`` reads, ``apply``
changes: a dry run is the same plan, printed, and nothing applied.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import files
from .apply import apply
from .plan import make_plan
from .rest import Credentials, SetupError, connect, read_credentials

__all__ = ["Options", "SetupError", "Credentials", "read_credentials", "run"]

_IDENTITY = re.compile(r"[A-Za-z0-9_.@+-]{1,121}")  # appliance/config.py's rule
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


@dataclass(frozen=True)
class Options:
    config: Path  # piphone.toml; secrets.toml beside it (or where its [account] secrets says)
    identity: str | None = None  # default: the config's, else this machine's host name
    number: str | None = None  # +E.164; default: the account's only number
    dry_run: bool = False
    force: bool = False  # replace files setup did not write (keeping their other sections)


def run(options: Options, credentials: Credentials, say: Callable[[str], None] = print
        ) -> Path | None:
    """Set the account up; the config written (None after a dry run). SetupError on failure,
    before anything changed wherever it can be known in advance."""
    if options.identity is not None and not _IDENTITY.fullmatch(options.identity):
        raise SetupError("--identity must be 1-121 letters, digits or _ . @ + -")
    if options.number is not None and not _E164.fullmatch(options.number):
        raise SetupError("--number must be in E.164 form: + then the country code and number, "
                         "e.g. +15551234567")
    local = files.inspect(options.config, force=options.force)
    identity = options.identity or local.identity or default_identity()
    client = connect(credentials.account_sid, credentials.auth_token)
    plan = make_plan(client, credentials.account_sid, identity, options.number, local)
    # What would be written must load, before anything changes at Twilio.
    files.check(local, plan.account_keys("SK" + "0" * 32, "AP" + "0" * 32), "x" * 32)
    say(plan.describe())
    for sid in plan.key.leftovers:
        say(f"  note    API key {sid} is also named {plan.name!r} and is not this phone's: "
            "delete it once no other phone uses it (Console > Account > API keys & tokens)")
    if plan.trial:
        say("  note    a trial account calls only its verified numbers, and callers first "
            "hear a trial message")
    if options.dry_run:
        say("dry run: nothing was changed")
        return None
    done = apply(plan, client, say)
    written = files.write(local, plan.account_keys(done.api_key_sid, done.twiml_app_sid),
                          done.api_key_secret)
    say("wrote " + " and ".join(str(p) for p in written) if written
        else f"{local.config} and {local.secrets} were already right")
    say(f"phone {identity!r}: calls to {plan.number.phone_number} ring it; its calls go out "
        f"through {done.url}")
    return local.config


def default_identity() -> str:
    """This machine's host name as an identity (``raspberrypi`` on a fresh Pi)."""
    name = re.sub(r"[^A-Za-z0-9_.@+-]", "-", socket.gethostname().split(".")[0])[:121]
    return name or "piphone"
