"""`piphone` on the command line: run | exchange | token | call | calls | twilio.

Each subcommand builds what it needs from its arguments and config, runs, and returns an exit
status; ``main(argv)`` is what tests call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__, logsafe
from .errors import PiphoneError

log = logging.getLogger("piphone")

APPLIANCE_CONFIG = Path("/etc/piphone/piphone.toml")  # appliance/config.py's DEFAULT_PATH
DEFAULT_CALL_LOG = "/var/lib/piphone/calls.db"  # = calllog.DEFAULT_PATH (checked by a test)
CALL_EVENTS = ("ringing", "accept", "mute", "reject", "cancel", "disconnect", "error",
               "reconnecting", "reconnected", "dtmf", "warning", "warning-cleared")


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
        return args.func(args)
    except PiphoneError as exc:
        print(f"piphone: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="piphone", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"piphone {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the phone; with no config, a demo on the local exchange")
    run.add_argument("--config", type=Path,
                     help="piphone.toml: run the appliance (default /etc/piphone/piphone.toml "
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

    from . import cli_exchange

    cli_exchange.add_parser(sub, cmd_exchange)

    check = sub.add_parser("check", help="check a config; list the ALSA cards and say which "
                                         "one is the headset")
    check.add_argument("--config", type=Path,
                       help="piphone.toml: checked in full when it has [account] (exit 2 on an "
                            "error); its [audio] headset names the card (default: USB)")
    check.add_argument("--headset", help="the card to look for, instead of the config's")
    check.set_defaults(func=cmd_check)

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

    call = sub.add_parser("call", help="place a call: on the running phone (no --url), or from "
                                       "the terminal with a test tone")
    call.add_argument("to", help="client:NAME, NAME, a number, or a line such as echo")
    call.add_argument("--url", help="signaling URL, e.g. ws://HOST:8089/signal (without it, "
                                    "the running phone service places the call)")
    call.add_argument("--token-file", type=Path, metavar="FILE",
                      help="file (mode 0600) with the access token for --url (see `piphone "
                           "token --out`)")
    call.add_argument("--token", help="the access token itself: visible to every user of this "
                                      "machine (ps); prefer --token-file")
    call.add_argument("--duration", type=float, help="hang up after this many seconds")
    call.add_argument("--tone", type=float, default=440.0,
                      help="test tone in Hz, sent when there is no headset (default 440)")
    call.add_argument("--headset", default="auto", metavar="CARD",
                      help="the headset: a card name such as USB, an ALSA device, CAPTURE,PLAYBACK "
                           "devices, 'auto' (a USB card if there is one; the default) or 'none' "
                           "(the test tone)")
    call.add_argument("--codec", action="append", choices=("opus", "pcmu"),
                      help="codec preference, repeatable (default: opus then pcmu)")
    call.add_argument("--ice-address", action="append", metavar="ADDR",
                      help="address ICE offers, repeatable (default: all but loopback)")
    call.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                      help="custom parameter sent with the call, repeatable")
    call.add_argument("--ca-file", type=Path, metavar="PEM",
                      help="trust this CA (and only it) for a wss:// --url: a local exchange "
                           "with its own CA (default: the system's trust store)")
    call.add_argument("--insecure", action="store_true",
                      help="accept any wss:// certificate, unchecked (logs a warning)")
    call.add_argument("--call-log", metavar="DB", help="record the call in this call log")
    call.set_defaults(func=cmd_call)
    for name, text in (("status", "the running phone: state, registration, call, quality"),
                       ("hangup", "hang up the running phone's call"),
                       ("answer", "answer the running phone's ringing call"),
                       ("mute", "mute or unmute the running phone's call")):
        control = sub.add_parser(name, help=text)
        control.add_argument("--json", action="store_true", help="print the reply as JSON")
        control.set_defaults(func=cmd_control)

    diagram = sub.add_parser("diagram", help="draw the phone's state machine (graphviz)")
    diagram.add_argument("-o", "--output", type=Path, metavar="FILE",
                         help="FILE.svg/.png/.pdf (needs graphviz's dot) or FILE.dot; "
                              "default: DOT source on stdout")
    diagram.set_defaults(func=cmd_diagram)

    twilio = sub.add_parser("twilio", help="set up a Twilio account for this phone")
    twilio_sub = twilio.add_subparsers(dest="twilio_command", required=True)
    setup = twilio_sub.add_parser(
        "setup", help="make this phone a Twilio client: a Function that answers its calls, a "
                      "TwiML App, its number, an API key, and its config (credentials from "
                      "TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN, else asked)")
    setup.add_argument("--config", type=Path, default=APPLIANCE_CONFIG,
                       help=f"piphone.toml to write, secrets.toml beside it (default "
                            f"{APPLIANCE_CONFIG})")
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

    calls = sub.add_parser("calls", help="print the recent calls of a call log")
    calls.add_argument("--db", default=DEFAULT_CALL_LOG,
                       help=f"call log database (default {DEFAULT_CALL_LOG}; the exchange's "
                            "is its config's call_log)")
    calls.add_argument("--limit", type=int, default=20, help="calls to show (default 20)")
    calls.add_argument("--json", action="store_true", help="JSON for scripts")
    calls.set_defaults(func=cmd_calls)
    return parser


def cmd_calls(args: argparse.Namespace) -> int:
    import json

    from .calllog import CallLog, format_table

    if args.limit < 1:
        raise PiphoneError(f"--limit must be at least 1, got {args.limit}")
    if not Path(args.db).exists():
        raise PiphoneError(f"{args.db}: no call log there")
    log_ = CallLog(args.db)
    try:
        records = log_.recent(args.limit)
    finally:
        log_.close()
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
    else:
        print(format_table(records) if records else "no calls yet")
    return 0


def cmd_control(args: argparse.Namespace, **fields: Any) -> int:
    """Talk to the running service over its control socket (appliance/control.py)."""
    import json

    from .appliance.control import request

    reply = request(args.command, **fields)
    if args.json:
        print(json.dumps(reply, sort_keys=True))
    elif not reply.get("ok"):
        print(f"piphone: {reply.get('error')}", file=sys.stderr)
    elif args.command == "status":
        print(reply["status"])
        for key in ("state", "identity", "registered", "peer", "muted", "dnd", "codec",
                    "mos", "warnings", "waiting", "last_number"):
            if reply.get(key) not in (None, "", []):
                print(f"  {key}: {reply[key]}")
    else:
        print(f"{args.command}: {reply.get('state')}")
    return 0 if reply.get("ok") else 1


def cmd_diagram(args: argparse.Namespace) -> int:
    from .appliance import diagram

    source = diagram.draw(args.output)
    if source is not None:
        print(source)
    else:
        print(f"wrote {args.output}")
    return 0


# --- exchange and token -------------------------------------------------------------------
def cmd_exchange(args: argparse.Namespace) -> int:
    from . import cli_exchange
    from .exchange import config as exchange_config
    from .exchange.tls import refuse_plaintext

    if args.init_config is not None:
        return cli_exchange.init_config(args)
    if args.action is not None or args.init_tls:
        return cli_exchange.admin(args)
    if args.config is None:
        raise PiphoneError("exchange needs --config FILE (or --init-config FILE to make one)")
    cfg = exchange_config.load(args.config)
    tls = cli_exchange.server_tls(cfg, args.tls_cert, args.tls_key)  # the config's by default
    refuse_plaintext(args.host or cfg.host, tls is not None,
                     args.allow_plaintext or cfg.allow_plaintext)
    return asyncio.run(_serve_exchange(cfg, args.host, args.port, tls))


async def _serve_exchange(cfg: Any, host: str | None, port: int | None,
                          tls: ssl.SSLContext | None) -> int:
    from .exchange.server import Exchange
    from .systemd import Notifier, feed_watchdog, watchdog_interval

    exchange = Exchange(cfg)
    await exchange.start(host=host, port=port, ssl_context=tls)
    stop = asyncio.ensure_future(_until_signal())
    await asyncio.sleep(0)  # SIGTERM handled before anyone is told we serve
    print(f"piphone exchange serving {exchange.url}", flush=True)
    notifier = Notifier()  # under systemd (piphone-exchange.service): ready, and alive
    notifier.send(f"READY=1\nSTATUS=serving {exchange.url}")
    interval = watchdog_interval()
    watchdog = (asyncio.ensure_future(feed_watchdog(notifier, interval))
                if interval is not None else None)
    try:
        await stop
    finally:
        notifier.send("STOPPING=1")
        if watchdog is not None:
            watchdog.cancel()
        await exchange.close()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Cards present, and the one ``audio.headset`` selects (exit 1 if none matches)."""
    from .audio import devices
    from .tomlconfig import TomlFile

    spec = args.headset
    if spec is None and args.config is not None:
        toml = TomlFile(args.config)
        if "account" in toml.data:  # a whole appliance config: check all of it, as run would
            from .appliance import config as appliance_config

            cfg = appliance_config.load(args.config)  # ConfigError: file, key, line; exit 2
            print(f"config: {args.config} is valid (identity {cfg.account.identity}, "
                  f"{len(cfg.pins.inputs)} inputs, {len(cfg.pins.leds)} LEDs)")
            for note in _twilio_notes(cfg.account):
                print(note)
            if cfg.audio.headset in ("auto", "none"):
                spec = "USB" if cfg.audio.headset == "auto" else None
                if spec is None:
                    print("headset: none (configured)")
                    return 0
            else:
                spec = cfg.audio.headset
        else:
            spec = toml.get("audio", "headset", str, "USB")
    spec = spec or "USB"
    cards = devices.list_cards()
    print("ALSA cards:" if cards else "ALSA cards: none (no sound card, or no sound support)")
    for card in cards:
        print(f"  {card.describe()}")
    if devices.is_explicit(spec):
        print(f"headset: {spec} (an ALSA device name, used as given)")
        return 0
    try:
        card = devices.select(spec, cards)
    except devices.AudioDeviceError as exc:
        print(f"headset: {exc}")
        return 1
    print(f"headset: {card.describe()} -> {card.device}")
    return 0


def _twilio_notes(account: Any) -> list[str]:
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


def cmd_token(args: argparse.Namespace) -> int:
    from .tomlconfig import TomlFile, sid
    from .voice.tokens import mint

    if args.twiml_app_sid is not None and (problem := sid("AP")(args.twiml_app_sid)):
        raise PiphoneError(f"--twiml-app-sid {problem}")
    app_sid, incoming = args.twiml_app_sid, not args.no_incoming
    if "account" in TomlFile(args.config).data:  # a phone's piphone.toml: a Twilio token
        from .appliance import config as appliance_config

        account = appliance_config.load(args.config).account
        if not account.mints_tokens:
            raise PiphoneError(f"{args.config}: its secrets hold a fixed token, not an API key "
                               "secret to mint one with")
        identity = args.identity or account.identity
        app_sid = app_sid or account.twiml_app_sid
        incoming = incoming and account.incoming_allow
        keys = {"account_sid": account.account_sid, "api_key_sid": account.api_key_sid,
                "api_key_secret": account.api_key_secret}
    else:
        from .exchange import config as exchange_config

        if args.identity is None:
            raise PiphoneError("token --config exchange.toml needs --identity")
        identity, keys = args.identity, exchange_config.load(args.config).token_kwargs()
    _emit_token(mint(identity=identity, ttl=args.ttl, outgoing_application_sid=app_sid,
                     incoming_allow=incoming, **keys), args.out)
    return 0


def cmd_twilio_setup(args: argparse.Namespace) -> int:
    from . import twilio_setup

    logging.getLogger("twilio").setLevel(logging.WARNING)  # the helper logs each request
    options = twilio_setup.Options(config=args.config, identity=args.identity,
                                   number=args.number, dry_run=args.dry_run, force=args.force)
    path = twilio_setup.run(options, twilio_setup.read_credentials())
    if path is None:
        return 0
    print(f"\n$ piphone check --config {path}", flush=True)
    if cmd_check(argparse.Namespace(config=path, headset=None)) == 1:
        print("setup is done; the phone needs its headset before `piphone run` (see above)")
    return 0


def _emit_token(token: str, out: Path | None) -> None:
    if out is None:
        print(token)
        return
    from .tomlconfig import write_private

    write_private(out, token + "\n")
    print(f"wrote {out} (mode 0600): `piphone call ... --token-file {out}`")


# --- call -------------------------------------------------------------------------------------
def cmd_call(args: argparse.Namespace) -> int:
    if args.url is None:  # the phone on this machine places it
        args.command, args.json = "call", False
        return cmd_control(args, number=args.to)
    token = _call_token(args)
    params = {"To": args.to}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PiphoneError(f"--param takes KEY=VALUE, got {item!r}")
        params[key] = value
    if args.insecure and args.ca_file is not None:
        raise PiphoneError("--insecure checks nothing: it does not go with --ca-file")
    if (args.insecure or args.ca_file is not None) and not args.url.startswith("wss://"):
        raise PiphoneError("--ca-file and --insecure are for a wss:// --url")
    ssl_context = None
    if args.url.startswith("wss://"):
        from .voice import tls

        ssl_context = tls.client_context(ca_file=args.ca_file, insecure=args.insecure)
    options = {
        "signaling_url": args.url,
        "codec_preferences": tuple(args.codec or ("opus", "pcmu")),
        "ice_addresses": args.ice_address,
        "ssl_context": ssl_context,
    }
    return asyncio.run(place_call(token, params, options, args.tone, args.duration,
                                 read_digits=True, headset=headset_devices(args.headset),
                                 call_log=args.call_log))


def _call_token(args: argparse.Namespace) -> str:
    """The token from --token-file (a secrets file: 0600, not a link) or, with a warning,
    from --token (a command line is world-readable in /proc)."""
    if args.token_file is not None and args.token is not None:
        raise PiphoneError("--token-file or --token, not both")
    if args.token_file is not None:
        from .tomlconfig import read_private

        token = read_private(args.token_file).strip()
        if not token:
            raise PiphoneError(f"{args.token_file}: no token in it")
        return token
    if args.token is None:
        raise PiphoneError("--url needs --token-file (see `piphone token --out FILE`)")
    print("piphone: warning: --token is visible to every user of this machine (ps, /proc); "
          "use --token-file FILE", file=sys.stderr)
    return args.token


def headset_devices(spec: str) -> tuple[str, str] | None:
    """(capture, playback) ALSA devices for ``--headset``, or None for the test tone."""
    from .audio import devices

    if spec == "none":
        return None
    if spec == "auto":
        try:
            card = devices.select("USB", devices.list_cards())
        except devices.AudioDeviceError:
            return None  # no headset here: the test tone it is
        return card.device, card.device
    capture, _, playback = spec.partition(",")
    if playback:
        return capture, playback
    device = devices.resolve(spec)
    return device, device


async def place_call(token: str, params: dict[str, str], options: dict[str, Any],
                     tone: float, duration: float | None, *, read_digits: bool,
                     out: Callable[[str], None] | None = None,
                     headset: tuple[str, str] | None = None,
                     call_log: str | None = None) -> int:
    """Place one call, print its events as they happen; 0 if it was answered.

    With a headset, its microphone and earpiece carry the call; without one, a test tone goes
    out and what comes back is reported once a second."""
    from .pcm import Recorder, Tone, dominant_frequency
    from .voice import Device
    from .voice.errors import TwilioError

    say = out or (lambda line: print(line, flush=True))
    start = time.monotonic()

    def stamp(text: str) -> None:
        say(f"{time.monotonic() - start:7.3f}  {text}")

    recorder = Recorder(seconds=2)
    streams: list[Any] = []
    if headset is None:
        source, sink = (lambda: Tone(tone)), (lambda: recorder)
    else:
        from .audio.headset import Headset

        phones = Headset(headset[0], headset[1])  # watches the card a CARD=<id> device names
        streams.append(phones)
        phones.open()  # a missing device is an AudioDeviceError naming it
        phones.on("lost", lambda reason: stamp(f"headset lost: {reason}"))
        phones.on("back", lambda: stamp("headset back"))
        source, sink = phones.source, phones.sink
        stamp(f"headset: capture {headset[0]}, playback {headset[1]}")
    device = Device(token, audio_source=source, audio_sink=sink, **options)
    device.on("error", lambda error, call=None: stamp(f"device error {error}"))
    answered = False
    try:
        stamp(f"calling {params['To']} via {options['signaling_url']}")
        call = await device.connect(params)
        if call_log is not None:
            from .calllog import CallLog, track

            track(CallLog(call_log), call, identity=device.identity)
        finished = asyncio.Event()
        for name in CALL_EVENTS:
            call.on(name, _printer(stamp, name))
        call.on("status", lambda status: finished.set() if str(status) == "closed" else None)
        if streams and hasattr(call, "set_condition"):  # Call's piphone-only warnings
            _headset_warnings(streams[0], call)
        accepted = asyncio.Event()
        call.once("accept", lambda _call: accepted.set())
        stop = asyncio.ensure_future(_until_signal())
        digits = _DigitReader(call, stamp) if read_digits else None
        waiters = [stop, asyncio.ensure_future(finished.wait())]
        if duration is not None:
            waiters.append(asyncio.ensure_future(asyncio.sleep(duration)))
        heard_task = asyncio.ensure_future(
            _report_audio(call, recorder, stamp, dominant_frequency) if headset is None
            else asyncio.sleep(0))
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        heard_task.cancel()
        answered = accepted.is_set()
        if digits is not None:
            digits.stop()
        if str(call.status()) != "closed":
            stamp("hanging up")
            call.disconnect()
            await asyncio.wait_for(call.wait_closed(), 5)
    except TwilioError as exc:
        stamp(f"error {exc}")
    finally:
        await device.destroy()
        for phones in streams:
            await phones.close()  # joins the audio threads off the loop
    return 0 if answered else 1


def _headset_warnings(headset: Any, call: Any) -> None:
    """A pulled headset is the call's ``audio-device-lost`` warning until it is back."""
    if not headset.present:
        call.set_condition("audio-device-lost", True)
    headset.on("lost", lambda _reason: call.set_condition("audio-device-lost", True))
    headset.on("back", lambda: call.set_condition("audio-device-lost", False))


def _printer(stamp: Callable[[str], None], name: str) -> Callable[..., None]:
    def show(*args: Any) -> None:
        detail = ""
        if name == "error" and args:
            detail = f" {args[0]}"
        elif name == "mute" and args:
            detail = f" {'muted' if args[0] else 'unmuted'}"
        elif name in ("dtmf", "warning", "warning-cleared") and args:
            detail = f" {args[0]}"
        elif name == "accept" and args:
            detail = f" codec={args[0].codec} CallSid={args[0].call_sid}"
        stamp(name + detail)

    return show


async def _report_audio(call: Any, recorder: Any, stamp: Callable[[str], None],
                        dominant_frequency: Callable) -> None:
    """Once a second while open, say what the far end sounds like (the echo test's proof)."""
    while True:
        await asyncio.sleep(1.0)
        if str(call.status()) == "open" and recorder.sample_rate:
            freq = dominant_frequency(recorder.last(0.5), recorder.sample_rate)
            stamp(f"hearing {'silence' if freq is None else f'{freq:.0f} Hz'}")


class _DigitReader:
    """Digits typed on stdin go out as DTMF. stdin is read on its own daemon thread (it may be
    a tty, pipe or file; none of the loop's readers handles all three), handed over once."""

    def __init__(self, call: Any, stamp: Callable[[str], None]) -> None:
        self._call, self._stamp = call, stamp
        self._loop = asyncio.get_running_loop()
        self._stopped = False
        if sys.stdin is not None and not sys.stdin.closed:
            threading.Thread(target=self._read, name="stdin-digits", daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin:
            if self._stopped:
                return
            self._loop.call_soon_threadsafe(self._send, line.strip())

    def _send(self, digits: str) -> None:
        if not digits or self._stopped:
            return
        if str(self._call.status()) in ("connecting", "ringing"):
            # Typed ahead of the answer: a phone keeps them and sends them once connected.
            self._call.once("accept", lambda _call: self._send(digits))
            self._stamp(f"digits {digits} wait for the answer")
            return
        try:
            self._call.send_digits(digits)
            self._stamp(f"sent digits {digits}")
        except PiphoneError as exc:
            self._stamp(f"digits not sent: {exc}")

    def stop(self) -> None:
        self._stopped = True


# --- run: the phone, or with no hardware the demo ---------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    # With a config (given, or installed in /etc/piphone) this is the appliance. Without one,
    # a demo: on a terminal the appliance itself on mock pins, answered with keys; otherwise
    # (a pipe, a script, --echo) a call to the local exchange's echo line with its events.
    path = None if args.terminal else args.config
    if path is None and not args.terminal and APPLIANCE_CONFIG.exists():
        path = APPLIANCE_CONFIG
    if path is not None:
        from .appliance import service

        return service.main(path)
    if args.terminal or (not args.echo and sys.stdin.isatty() and sys.stdout.isatty()):
        from .appliance import demo

        return asyncio.run(demo.run(call_every=args.call_every))
    return asyncio.run(run_demo(args.duration))


async def run_demo(duration: float | None, out: Callable[[str], None] | None = None) -> int:
    from dataclasses import replace

    from .exchange import config as exchange_config
    from .exchange.server import Exchange
    from .voice.tokens import mint

    say = out or (lambda line: print(line, flush=True))
    with tempfile.TemporaryDirectory(prefix="piphone-demo-") as tmp:
        cfg = exchange_config.load(exchange_config.write_starter(Path(tmp) / "exchange.toml"))
        # The demo stays on this machine: loopback only, both for signaling and for ICE.
        cfg = replace(cfg, host="127.0.0.1", port=0, ice_addresses=("127.0.0.1",))
        exchange = Exchange(cfg)
        await exchange.start()
        say(f"local exchange on {exchange.url}; calling its echo line (Ctrl-C hangs up)")
        try:
            token = mint(identity="demo", ttl=3600, **cfg.token_kwargs())
            options = {"signaling_url": exchange.url, "ice_addresses": ("127.0.0.1",)}
            return await place_call(token, {"To": "echo"}, options, 440.0, duration,
                                    read_digits=False, out=say,
                                    headset=headset_devices("auto"))
        finally:
            await exchange.close()


# --- helpers ----------------------------------------------------------------------------------
async def _until_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
