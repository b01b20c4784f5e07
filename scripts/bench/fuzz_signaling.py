#!/usr/bin/env python3
"""Fuzz the exchange's signaling with generated frames, then look for what it leaked.

Frames come from hypothesis strategies, from a fixed seed (the same frames every run): frames
of every client type with fields of the right and the wrong types, random JSON, random text
and bytes, deep nesting, lone surrogates, strings around the 64 KiB limit, frames out of order
(answers, hangups, reinvites and resumes naming CallSids and reconnect tokens other sessions
saw), and real invites with a real SDP to the exchange's lines and to fuzzing sessions that
registered. Batches of frames are sessions, from authenticated and unauthenticated sockets,
run by a few lanes at once. Each session ends with a probe (a fresh listen) that a live
session answers.

What counts as a finding: a session closed with a code other than the ones a misbehaving
client earns (1008 too many bad frames, 1009 too big, 1013 over a limit) or one that hangs, a
frame answered with an internal error (31000 "internal error"), and whatever is left once
every socket has closed and the reconnect grace has run out: calls, legs, sessions,
registrations, peer connections, sockets. It prints frames/s and the findings.
tests/integration/test_fuzz_signaling.py runs this engine in CI (10,000 frames); this script
runs it longer:

    scripts/bench/fuzz_signaling.py --seed 7 --frames 100000

Run as root; it re-executes itself in a loopback-only network namespace.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import logging
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))

from _common import ensure_isolated_network  # noqa: E402

LOOPBACK = ("127.0.0.1",)
IDENTITIES = ("fuzz0", "fuzz1", "fuzz2", "fuzz3")
DESTINATIONS = ("echo", "tone", "fuzz0", "client:fuzz1", "fuzz2", "fuzz3", "100", "nobody",
                "+15550100", "", "client:")
EXPECTED_CLOSES = {1000, 1008, 1009, 1013}  # ours when done, bad frames, too big, refused


# --- what a frame is before it is sent ------------------------------------------------------
@dataclass(frozen=True)
class Known:
    """A value the fuzzer learns while it runs: a CallSid or reconnect token some session
    saw (``any``), one this session saw (``mine``), this session's own invite id (``own``)."""

    kind: str


@dataclass
class Batch:
    authenticated: bool
    identity: str
    frames: list[Any]  # str | bytes | dict (type, payload with Known values) | "SDP" marker


SDP = Known("sdp")  # a real offer, made once per run


def strategies():
    """The hypothesis strategy of one Batch (imported here: a test extra)."""
    from hypothesis import strategies as st

    from piphone.voice import protocol

    # Small on purpose: hypothesis spends about a millisecond a frame, most of it here.
    leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
    value = st.recursive(leaf, lambda inner: st.lists(inner, max_size=2)
                         | st.dictionaries(st.text(max_size=4), inner, max_size=2),
                         max_leaves=4)
    callsid = st.one_of(
        st.sampled_from([Known("any"), Known("mine"), Known("own"), Known("any")]),
        st.just("TJS" + "0" * 36), st.text(max_size=70),
        st.binary(min_size=16, max_size=16).map(lambda b: "CA" + b.hex()))
    text = st.one_of(st.text(max_size=40), st.sampled_from(["", "v=0", "1234#", "w1w"]))
    params = st.one_of(
        st.builds(lambda to, extra: f"To={to}{extra}", st.sampled_from(DESTINATIONS),
                  st.sampled_from(["", "&a=b", "&To=echo", "&x=" + "y" * 300])),
        text, value)

    def field_value(name: str):
        specific = {
            "callsid": callsid, "sdp": st.one_of(st.just(SDP), text),
            "token": st.one_of(text, st.just("eyJ.x.y")),
            "media": st.one_of(st.fixed_dictionaries({"audio": st.booleans()}), value),
            "twilio": st.one_of(st.fixed_dictionaries({"params": params}), value),
            "reconnect": st.one_of(st.just(Known("token")), text),
            "dtmf": st.one_of(st.sampled_from(["1", "123#*", "12w3", "x", "9" * 300]), text),
        }.get(name)
        return st.one_of(specific, value) if specific is not None else value

    def payload_of(type_: str):
        required, optional = protocol.CLIENT_FRAMES[type_]
        present = st.fixed_dictionaries(
            {name: field_value(name) for name in required},
            optional={name: field_value(name) for name in optional})
        anything = st.fixed_dictionaries(  # required fields missing, too
            {}, optional={name: field_value(name) for name in (*required, *optional)})
        return st.one_of(present, present, present, anything)

    typed = st.one_of([st.builds(lambda p, t=t: {"type": t, "version": "1.6", "payload": p},
                                 payload_of(t)) for t in sorted(protocol.CLIENT_FRAMES)])
    real_invite = st.builds(
        lambda to: {"type": "invite", "version": "1.6", "payload": {
            "callsid": Known("new"), "sdp": SDP, "preflight": False,
            "twilio": {"params": f"To={to}"}}}, st.sampled_from(DESTINATIONS))
    well_formed = st.one_of(
        st.just({"type": "register", "payload": {"media": {"audio": True}}}),
        st.just({"type": "register", "payload": {"media": {"audio": False}}}),
        st.builds(lambda k: {"type": "hangup", "payload": {"callsid": Known(k)}},
                  st.sampled_from(["own", "mine", "any"])),
        st.builds(lambda k: {"type": "answer", "payload": {"callsid": Known(k), "sdp": SDP}},
                  st.sampled_from(["mine", "any"])),
        st.builds(lambda k: {"type": "reinvite", "payload": {"callsid": Known(k), "sdp": SDP}},
                  st.sampled_from(["own", "mine", "any"])),
        st.builds(lambda k: {"type": "dtmf", "payload": {"callsid": Known(k), "dtmf": "1#"}},
                  st.sampled_from(["mine", "any"])),
        st.builds(lambda k: {"type": "reject", "payload": {"callsid": Known(k)}},
                  st.sampled_from(["mine", "any"])),
        st.just({"type": "invite", "payload": {"callsid": Known("new"), "sdp": SDP,
                                               "reconnect": Known("token"), "twilio": {}}}),
    )
    depth = st.integers(30, 3000)
    deep = st.one_of(depth.map(lambda n: "[" * n + "]" * n), depth.map(lambda n: "[" * n),
                     depth.map(lambda n: '{"type": "register", "payload": {"media": '
                               + '{"a":' * n + "1" + "}" * n + "}}"))
    # json.dumps writes a lone surrogate as its \\u escape: valid UTF-8 on the wire, not text.
    lone = st.sampled_from(["\ud800", "\udfff", "x\udc00", "\ude00\ud83d"])
    surrogate = st.builds(
        lambda t, where, bad: json.dumps({"type": t, "payload": {
            "callsid": "TJS1", "sdp": "v=0", "token": "a", "media": {"audio": True},
            "dtmf": "1", "twilio": {"params": "To=echo"}, where: bad}}),
        st.sampled_from(sorted(protocol.CLIENT_FRAMES)),
        st.sampled_from(["callsid", "sdp", "token", "dtmf", "message", "content"]), lone)
    huge = st.integers(60_000, 70_000).map(
        lambda n: json.dumps({"type": "hangup", "payload": {"callsid": "CA1",
                                                            "message": "m" * n}}))
    junk = st.one_of(st.text(max_size=60), st.binary(max_size=30),
                     value.map(json.dumps), st.just("\n"))
    # one_of flattens: each branch of each of these is drawn about as often (huge: 1 in 27).
    frame = st.one_of(typed, well_formed, real_invite, junk, deep, surrogate, huge)
    return st.builds(Batch, st.integers(0, 4).map(lambda n: n > 0),  # 80 % authenticated
                     st.sampled_from(IDENTITIES), st.lists(frame, min_size=15, max_size=40))


CI_SEED = 14  # the seed of the CI test (tests/integration/test_fuzz_signaling.py)


def batches(frames: int, seed: int = CI_SEED) -> list[Batch]:
    """Batches holding at least ``frames`` frames, the same for the same seed: hypothesis
    runs in rounds seeded seed, seed + 1, ..., each about as many examples as still wanted
    (an example drawn but not needed costs as much as one that is)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as seeded

    made: list[Batch] = []
    strategy = strategies()
    count = 0
    for round_ in range(1000):
        wanted = frames - count
        if wanted <= 0:
            break

        @seeded(seed * 1000 + round_)
        @settings(max_examples=wanted // 27 + 1, deadline=None, database=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(strategy)
        def collect(batch: Batch) -> None:
            made.append(batch)

        collect()
        count = sum(len(b.frames) for b in made)
    return made


# --- running them -------------------------------------------------------------------------------
@dataclass
class Report:
    frames: int = 0
    sessions: int = 0
    seconds: float = 0.0
    closes: collections.Counter = field(default_factory=collections.Counter)
    replies: collections.Counter = field(default_factory=collections.Counter)
    internal_errors: list[tuple[str, str]] = field(default_factory=list)  # (frame, message)
    bad_closes: list[tuple[int | None, str]] = field(default_factory=list)  # (code, last)
    unanswered_probes: int = 0
    out_of_time: bool = False
    errors_logged: list[str] = field(default_factory=list)  # ERROR records, first line each

    def findings(self) -> list[str]:
        found = [f"out of time after {self.frames} frames"] if self.out_of_time else []
        found += [f"session closed with {code}: last frame sent {frame[:120]!r}"
                  for code, frame in self.bad_closes[:10]]
        found += [f"internal error {message!r} after {frame[:120]!r}"
                  for frame, message in self.internal_errors[:10]]
        if self.unanswered_probes:
            found.append(f"{self.unanswered_probes} live sessions did not answer the probe")
        found += [f"logged: {line}" for line in dict.fromkeys(self.errors_logged)]
        return found


class ErrorLog(logging.Handler):
    """Keeps the first line of every ERROR the exchange logs (a task that died, a bug)."""

    def __init__(self, report: Report) -> None:
        super().__init__(logging.ERROR)
        self.report = report

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        cause = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        self.report.errors_logged.append(f"{record.name}: {record.getMessage()}{cause}"[:300])


class Fuzzer:
    """Replays batches against a running Exchange, ``lanes`` sessions at a time."""

    QUIET = 0.03  # seconds without a reply that end a session's linger
    LINGER_MAX = 1.0  # seconds a session lingers at most after its probe
    SESSION_TIMEOUT = 20.0  # seconds a session may take in all: more is a finding (a hang)

    def __init__(self, exchange: Any, sdp: str) -> None:
        self.exchange = exchange
        self.sdp = sdp
        self.report = Report()
        self.seen_sids: collections.deque[str] = collections.deque(maxlen=200)
        self.seen_tokens: collections.deque[str] = collections.deque(maxlen=50)
        self._picks = 0

    def token(self, identity: str) -> str:
        from piphone.voice.tokens import mint

        return mint(identity=identity, ttl=600, **self.exchange.config.token_kwargs())

    async def run(self, work: list[Batch], lanes: int = 4,
                  deadline: float | None = None) -> Report:
        """Replay ``work``; no session starts after ``deadline`` seconds (a finding)."""
        queue: asyncio.Queue[Batch] = asyncio.Queue()
        for batch in work:
            queue.put_nowait(batch)
        started = time.perf_counter()
        errors = ErrorLog(self.report)
        logging.getLogger("piphone").addHandler(errors)
        try:
            await self._run(queue, lanes, deadline, started)
        finally:
            logging.getLogger("piphone").removeHandler(errors)
        self.report.seconds = time.perf_counter() - started
        return self.report

    async def _run(self, queue: asyncio.Queue[Batch], lanes: int, deadline: float | None,
                   started: float) -> None:

        async def lane() -> None:
            while not queue.empty():
                if deadline is not None and time.perf_counter() - started > deadline:
                    self.report.out_of_time = True
                    return
                batch = queue.get_nowait()
                try:
                    async with asyncio.timeout(self.SESSION_TIMEOUT):
                        await self.session(batch)
                except TimeoutError:
                    self.report.bad_closes.append(
                        (None, f"session hung over {self.SESSION_TIMEOUT:g} s"))

        await asyncio.gather(*(lane() for _ in range(lanes)))

    def render(self, template: Any, mine: list[str], own: list[str]) -> str | bytes:
        if isinstance(template, str | bytes):
            return template

        def fill(value: Any) -> Any:
            if isinstance(value, Known):
                if value.kind == "sdp":
                    return self.sdp
                if value.kind == "new":
                    own.append(f"TJS{uuid.uuid4()}")
                    return own[-1]
                pool = {"own": own, "mine": mine, "any": list(self.seen_sids),
                        "token": list(self.seen_tokens)}[value.kind]
                self._picks += 1
                return pool[self._picks % len(pool)] if pool else "CAunknown"
            if isinstance(value, dict):
                return {k: fill(v) for k, v in value.items()}
            if isinstance(value, list):
                return [fill(v) for v in value]
            return value

        return json.dumps(fill(template))

    async def session(self, batch: Batch) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        report = self.report
        report.sessions += 1
        mine: list[str] = []
        own: list[str] = []
        connected = asyncio.Event()
        last = ["(none)"]
        try:
            ws = await connect(self.exchange.url, max_size=None, open_timeout=5)
        except (OSError, InvalidStatus, TimeoutError) as exc:
            report.bad_closes.append((None, f"could not connect: {exc}"))
            return

        async def read() -> None:
            try:
                async for message in ws:
                    if message == "\n":
                        await ws.send("\n")
                        continue
                    frame = json.loads(message)
                    kind, payload = frame.get("type"), frame.get("payload") or {}
                    report.replies[kind] += 1
                    for sid in (payload.get("callsid"),):
                        if isinstance(sid, str):
                            mine.append(sid)
                            self.seen_sids.append(sid)
                    if isinstance(payload.get("reconnect"), str):
                        self.seen_tokens.append(payload["reconnect"])
                    if kind == "connected":
                        connected.set()
                    error = payload.get("error") or {}
                    if kind == "error" and "internal error" in str(error.get("message")):
                        report.internal_errors.append((last[0], error["message"]))
            except ConnectionClosed:
                pass

        reader = asyncio.ensure_future(read())
        try:
            if batch.authenticated:
                await ws.send(json.dumps({"type": "listen", "payload": {
                    "token": self.token(batch.identity)}}))
                await asyncio.wait_for(connected.wait(), 5)
                connected.clear()
            for template in batch.frames:
                last[0] = text = self.render(template, mine, own)
                await ws.send(text)
                report.frames += 1
            await ws.send(json.dumps({"type": "listen", "payload": {
                "token": self.token(batch.identity)}}))
            try:
                await asyncio.wait_for(connected.wait(), 2)
            except TimeoutError:
                if ws.close_code is None:
                    report.unanswered_probes += 1
            # Calls being set up answer after the probe: stay until the session is quiet.
            deadline = time.monotonic() + self.LINGER_MAX
            while time.monotonic() < deadline and ws.close_code is None:
                heard = sum(report.replies.values())
                await asyncio.sleep(self.QUIET)
                if sum(report.replies.values()) == heard:
                    break
        except ConnectionClosed:
            pass
        finally:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                ws.transport.abort()  # it hung: no closing handshake to wait for
            else:
                await ws.close()
            await reader
        rcvd = ws.protocol.close_rcvd  # None: closed without a closing handshake
        code = rcvd.code if rcvd is not None else None
        report.closes[code] += 1
        if code not in EXPECTED_CLOSES:
            report.bad_closes.append((code, str(last[0])))


async def offer_sdp() -> str:
    """A real offer, as a Device makes it, whose peer connection is closed at once."""
    from piphone.pcm import Silence
    from piphone.voice.rtc import MediaSession, MediaSettings

    media = MediaSession(MediaSettings(ice_addresses=LOOPBACK), Silence())
    try:
        return await media.offer()
    finally:
        await media.close()


def leftovers(exchange: Any) -> dict[str, int]:
    """What the exchange still holds: everything here should be 0 once sockets closed."""
    from aiortc import RTCPeerConnection

    gc.collect()
    calls = exchange.calls
    return {
        "calls": len(calls.calls),
        "legs": len(calls.legs),
        "sessions": len(exchange.sessions),
        "registrations": sum(exchange.registrations.count(i) for i in IDENTITIES),
        "peer connections": sum(1 for o in gc.get_objects() if type(o) is RTCPeerConnection
                                and o.connectionState != "closed"),
    }


def socket_kinds() -> collections.Counter:
    """This process's open sockets by kind: tcp (signaling), udp (media), unix, other."""
    import contextlib
    import os

    inodes = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{name}")
            if link.startswith("socket:["):
                inodes.add(link[len("socket:["):-1])
    kinds: collections.Counter = collections.Counter()
    for kind, inode_column in (("tcp", 9), ("tcp6", 9), ("udp", 9), ("udp6", 9), ("unix", 6)):
        with contextlib.suppress(OSError), open(f"/proc/self/net/{kind}") as table:
            for line in table.read().splitlines()[1:]:
                parts = line.split()
                if len(parts) > inode_column and parts[inode_column] in inodes:
                    kinds[kind.rstrip("6")] += 1
                    inodes.discard(parts[inode_column])
    kinds["other"] = len(inodes)
    return kinds


async def settle(exchange: Any, timeout: float) -> dict[str, int]:
    """Leftovers, once they are gone or ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        left = leftovers(exchange)
        if not any(left.values()) or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.1)


# --- the benchmark ------------------------------------------------------------------------------
async def main_async(args: argparse.Namespace) -> int:
    from piphone.exchange import config as exchange_config
    from piphone.exchange.server import Exchange

    generating = time.perf_counter()
    work = batches(args.frames, args.seed)
    generated = time.perf_counter() - generating
    with tempfile.TemporaryDirectory() as tmp:
        cfg = exchange_config.load(exchange_config.write_starter(Path(tmp) / "exchange.toml"))
        cfg = replace(cfg, port=0, ice_addresses=LOOPBACK, reconnect_grace=0.5,
                      max_bad_frames=1_000_000)
        exchange = Exchange(cfg)
        await exchange.start(host="127.0.0.1", port=0)
        sockets = socket_kinds()
        try:
            fuzzer = Fuzzer(exchange, await offer_sdp())
            report = await fuzzer.run(work, lanes=args.lanes)
            left = await settle(exchange, cfg.reconnect_grace + 10)
            await asyncio.sleep(1)  # sockets of closed sessions finish closing
            left.update({f"{kind} sockets": n - sockets[kind]
                         for kind, n in socket_kinds().items() if n > sockets[kind]})
        finally:
            await exchange.close()
    print(f"seed {args.seed}: "
          f"{report.frames} frames in {report.sessions} sessions, generated in "
          f"{generated:.1f} s, sent in {report.seconds:.1f} s "
          f"({report.frames / report.seconds:.0f} frames/s)")
    print(f"closes: {dict(report.closes)}")
    print(f"replies: {dict(report.replies.most_common())}")
    print(f"left after the grace: {left}")
    findings = report.findings() + [f"left {n} {what}" for what, n in left.items() if n]
    print("findings:" if findings else "findings: none")
    for finding in findings:
        print(f"  {finding}")
    return 1 if findings else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=CI_SEED,
                        help=f"hypothesis seed (default: {CI_SEED}, as in CI)")
    parser.add_argument("--frames", type=int, default=100_000, help="frames to send")
    parser.add_argument("--lanes", type=int, default=4, help="sessions at once")
    args = parser.parse_args()
    ensure_isolated_network(sys.argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
