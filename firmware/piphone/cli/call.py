"""`piphone call`: a call placed from the terminal (a test tone, or the headset), its events
printed as they happen; without ``--url``, the running phone service places it."""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PiphoneError
from .common import Subparsers, until_signal

if TYPE_CHECKING:
    from ..audio.headset import Headset
    from ..pcm import Recorder
    from ..voice import Call

CALL_EVENTS = ("ringing", "accept", "mute", "reject", "cancel", "disconnect", "error",
               "reconnecting", "reconnected", "dtmf", "warning", "warning-cleared")


def add_parser(sub: Subparsers) -> None:
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


def cmd_call(args: argparse.Namespace) -> int:
    if args.url is None:  # the phone on this machine places it
        from .phone import cmd_control

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
        from ..voice import tls

        ssl_context = tls.client_context(ca_file=args.ca_file, insecure=args.insecure)
    options: dict[str, Any] = {
        "signaling_url": args.url,
        "ice_addresses": args.ice_address,
        "ssl_context": ssl_context,
    }
    if args.codec:  # else the Device's own preference: opus, then pcmu
        options["codec_preferences"] = tuple(args.codec)
    from ..audio.devices import HeadsetSpec

    headset = HeadsetSpec.parse(args.headset).devices()
    return asyncio.run(place_call(token, params, options, args.tone, args.duration,
                                  read_digits=True, headset=headset, call_log=args.call_log))


def _call_token(args: argparse.Namespace) -> str:
    """The token from --token-file (a secrets file: 0600, not a link) or, with a warning,
    from --token (a command line is world-readable in /proc)."""
    if args.token_file is not None and args.token is not None:
        raise PiphoneError("--token-file or --token, not both")
    if args.token_file is not None:
        from ..tomlconfig import read_private

        token = read_private(args.token_file).strip()
        if not token:
            raise PiphoneError(f"{args.token_file}: no token in it")
        return token
    if args.token is None:
        raise PiphoneError("--url needs --token-file (see `piphone token --out FILE`)")
    print("piphone: warning: --token is visible to every user of this machine (ps, /proc); "
          "use --token-file FILE", file=sys.stderr)
    return args.token


async def place_call(token: str, params: dict[str, str], options: dict[str, Any],
                     tone: float, duration: float | None, *, read_digits: bool,
                     out: Callable[[str], None] | None = None,
                     headset: tuple[str, str] | None = None,
                     call_log: str | None = None) -> int:
    """Place one call, print its events as they happen; 0 if it was answered.

    With a headset, its microphone and earpiece carry the call; without one, a test tone goes
    out and what comes back is reported once a second."""
    from ..pcm import Recorder, Tone, dominant_frequency
    from ..voice import CallStatus, Device
    from ..voice.errors import TwilioError

    say = out or (lambda line: print(line, flush=True))
    start = time.monotonic()

    def stamp(text: str) -> None:
        say(f"{time.monotonic() - start:7.3f}  {text}")

    recorder = Recorder(seconds=2)
    streams: list[Headset] = []
    source: Callable[[], Any]  # the Device's audio_source and audio_sink
    sink: Callable[[], Any]
    if headset is None:
        source, sink = (lambda: Tone(tone)), (lambda: recorder)
    else:
        from ..audio.headset import Headset

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
            from ..calllog import CallLog, track

            track(CallLog(call_log), call, identity=device.identity)
        finished = asyncio.Event()
        for name in CALL_EVENTS:
            call.on(name, printer(stamp, name))
        call.on("status", lambda status: finished.set() if status is CallStatus.CLOSED
                else None)
        if streams:
            headset_warnings(streams[0], call)
        accepted = asyncio.Event()
        call.once("accept", lambda _call: accepted.set())
        stop = asyncio.ensure_future(until_signal())
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
        if call.status() is not CallStatus.CLOSED:
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


def headset_warnings(headset: Headset, call: Call) -> None:
    """A pulled headset is the call's ``audio-device-lost`` warning until it is back."""
    if not headset.present:
        call.set_condition("audio-device-lost", True)
    headset.on("lost", lambda _reason: call.set_condition("audio-device-lost", True))
    headset.on("back", lambda: call.set_condition("audio-device-lost", False))


def printer(stamp: Callable[[str], None], name: str) -> Callable[..., None]:
    """A handler that prints call event ``name`` (with what matters of its arguments)."""
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


async def _report_audio(call: Call, recorder: Recorder, stamp: Callable[[str], None],
                        dominant_frequency: Callable[..., float | None]) -> None:
    """Once a second while open, say what the far end sounds like (the echo test's proof)."""
    from ..voice import CallStatus

    while True:
        await asyncio.sleep(1.0)
        if call.status() is CallStatus.OPEN and recorder.sample_rate:
            freq = dominant_frequency(recorder.last(0.5), recorder.sample_rate)
            stamp(f"hearing {'silence' if freq is None else f'{freq:.0f} Hz'}")


class _DigitReader:
    """Digits typed on stdin go out as DTMF. stdin is read on its own daemon thread (it may be
    a tty, pipe or file; none of the loop's readers handles all three), handed over once."""

    def __init__(self, call: Call, stamp: Callable[[str], None]) -> None:
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
        from ..voice import CallStatus

        if self._call.status() in (CallStatus.CONNECTING, CallStatus.RINGING):
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

