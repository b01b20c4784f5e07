"""Where a call-second goes, inside one process: the thread CPU clock around each piece.

``install()`` wraps the functions each packet passes through (aiortc's RTP/RTCP parsing and
building, libsrtp, aioice's STUN demultiplexing and consent, the Opus encoder and decoder,
piphone's jitter buffer and quality monitor, the datagram transport's send and receive) and
the event loop's callbacks (``Handle._run``), and counts **exclusive** thread CPU time per
piece: time spent in a nested piece is that piece's, not its caller's. What is left is
named for where it ran:

  other Python in callbacks   the rest of every callback and task step (aiortc's and
                              piphone's glue: tasks, futures, tracks, the RTP sender/receiver)
  timer callbacks             the rest of TimerHandle callbacks (sleep wake-ups, pacing)
  event loop's own work       main-thread CPU outside any callback (select, scheduling)
  other threads               process CPU minus the main thread's

The wrappers cost CPU themselves (two clock reads per call), so a profiled process is
measured apart from the unprofiled rows and reported as shares of its own CPU.
Only the standard library is imported here; ``install()`` imports what it wraps.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import time
from collections import defaultdict

# piece -> [(module, class or None, attribute), ...]
PIECES: dict[str, list[tuple[str, str | None, str]]] = {
    "RTP/RTCP parse+build": [("aiortc.rtp", "RtpPacket", "parse"),
                             ("aiortc.rtp", "RtpPacket", "serialize"),
                             ("aiortc.rtp", "RtcpPacket", "parse")],
    "SRTP": [("pylibsrtp", "Session", n)
             for n in ("protect", "unprotect", "protect_rtcp", "unprotect_rtcp")],
    "ICE demux, STUN, consent": [("aioice.stun", None, "parse_message"),
                                 ("aioice.ice", "StunProtocol", "send_stun"),
                                 ("aioice.ice", "Connection", "request_received")],
    "encode": [("piphone.voice.rtc.encoding", "VoiceEncoder", "encode")],
    "decode": [("aiortc.codecs.opus", "OpusDecoder", "decode"),
               ("piphone.voice.rtc.decoding", "MonoOpusDecoder", "decode"),
               ("aiortc.codecs.g711", "PcmuDecoder", "decode")],
    # aiortc's RTP handler (statistics, our jitter buffer and decoder, the sink), run in the
    # datagram callback since voice/rtc/arrival.py (before: in aiortc's reader task)
    "RTP receive handling": [("piphone.voice.rtc.arrival", None, "run_to_end")],
    "jitter buffer": [("piphone.voice.rtc.jitter", "AudioJitterBuffer", "add")],
    "quality": [("piphone.voice.quality", "QualityMonitor", "audio_clock"),
                ("piphone.voice.quality", "QualityMonitor", "add_sample")],
    "send (sendto)": [("asyncio.selector_events", "_SelectorDatagramTransport", "sendto")],
    "receive (recvfrom)": [("asyncio.selector_events", "_SelectorDatagramTransport",
                            "_read_ready")],
}
CALLBACKS = "other Python in callbacks"
TIMERS = "timer callbacks"
LOOP = "event loop's own work"
THREADS = "other threads"

_spent: dict[str, float] = defaultdict(float)
_calls: dict[str, int] = defaultdict(int)
_stack: list[list[float]] = []  # per open piece: [start, time of nested pieces]
_window: dict[str, float] = {}


def _timed(piece: str, original):
    clock = time.thread_time

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        frame = [clock(), 0.0]
        _stack.append(frame)
        try:
            return original(*args, **kwargs)
        finally:
            _stack.pop()
            total = clock() - frame[0]
            _spent[piece] += total - frame[1]
            _calls[piece] += 1
            if _stack:
                _stack[-1][1] += total
    return wrapper


def _wrap(module: str, owner: str | None, name: str, piece: str) -> None:
    mod = importlib.import_module(module)
    target = getattr(mod, owner) if owner else mod
    static = inspect.getattr_static(target, name)
    if isinstance(static, classmethod):
        setattr(target, name, classmethod(_timed(piece, static.__func__)))
    elif isinstance(static, staticmethod):
        setattr(target, name, staticmethod(_timed(piece, static.__func__)))
    else:
        setattr(target, name, _timed(piece, static))


def install() -> None:
    """Wrap every piece, and asyncio's callbacks; call before the call starts."""
    import asyncio.events

    for piece, places in PIECES.items():
        for place in places:
            _wrap(*place, piece)
    handle_run = asyncio.events.Handle._run
    timed_handle = _timed(CALLBACKS, handle_run)
    timed_timer = _timed(TIMERS, handle_run)

    def run(self):
        return (timed_timer if isinstance(self, asyncio.TimerHandle) else timed_handle)(self)
    asyncio.events.Handle._run = run


def start_window() -> None:
    _spent.clear()
    _calls.clear()
    _window.update(wall=time.monotonic(), main=time.thread_time(), process=time.process_time())


def report() -> dict[str, float]:
    """CPU-s per second of wall clock for each piece, and the totals, since start_window()."""
    wall = time.monotonic() - _window["wall"]
    main = time.thread_time() - _window["main"]
    process = time.process_time() - _window["process"]
    inside = sum(_spent.values())
    out = {piece: _spent.get(piece, 0.0) / wall for piece in (*PIECES, CALLBACKS, TIMERS)}
    out[LOOP] = (main - inside) / wall
    out[THREADS] = (process - main) / wall
    out["total"] = process / wall
    return out


def format_line(figures: dict[str, float]) -> str:
    """One line a worker prints and the parent parses: `BREAKDOWN piece=value;...`."""
    return "BREAKDOWN " + ";".join(f"{k}={v:.6f}" for k, v in figures.items())


def parse_line(line: str) -> dict[str, float]:
    body = line.removeprefix("BREAKDOWN ")
    return {k: float(v) for k, v in (item.split("=", 1) for item in body.split(";"))}
