"""piphone's receive buffer for audio: adaptive depth, concealment, no delay creep.

aiortc's receiver hands a frame to the decoder only when its jitter buffer's ``add(packet)``
returns one, and has no playout clock. Its audio buffer (``JitterBuffer(capacity=16,
prefetch=4)``) holds four frames (80 ms) and, after a single lost packet, waits until sixteen
later packets pile up, then releases one frame per arrival for the rest of the call: about
300 ms behind for good (aiortc issue #543).

``AudioJitterBuffer`` has the same interface (``add(packet) -> (pli, JitterFrame | None)``)
and is a release-on-arrival buffer whose depth is counted in frames waiting:

- It releases frames in sequence order, keeping ``target_depth`` frames back (one on a clean
  LAN: 20 ms). A frame that arrives out of order fills its slot if that slot has not been
  passed; a duplicate is dropped.
- A missing sequence number is skipped once more than ``target_depth`` later frames wait, or
  once the first of them has waited ``target_depth + 1`` frame times: the buffer never waits
  for a lost packet longer than for a late one, and never holds more than it means to.
- Skipped slots are concealed in the frame that is released next, so the decoder's output
  keeps the stream's length: for Opus the release is one Opus packet (RFC 6716 code 3)
  holding an empty frame per concealed slot (libopus runs its packet-loss concealment for an
  empty frame) followed by the real frame; for G.711 it is silence followed by the frame. At
  most ``max_conceal`` slots are concealed per gap: a longer outage has starved the
  listener's playout already, and concealing it now would only add delay.
- A frame that arrives after its slot was skipped is late: dropped and counted.
- The depth follows the measured jitter: the target is the larger of the reordering seen (how
  far behind the newest packet a packet arrived) and twice the RFC 3550 interarrival
  jitter, in frames, between ``min_depth`` and ``max_depth``. It grows at once when a packet
  arrives late or out of order and steps back down by one frame per ``shrink_after`` calm
  packets; a frame more than the target waiting is then dropped, so that the delay actually
  shrinks instead of moving to the playout side.

Timestamps handed on never go backwards (aiortc's timestamp mapper would take that for a
wrap). ``stats()`` gives the counters for the call's quality samples.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from aiortc.jitterbuffer import JitterFrame
from aiortc.rtp import RtpPacket

MAX_MISORDER = 100  # a packet this far behind the stream is a restarted sender, not a late one
OPUS_MAX_DURATION = 120.0  # ms in one Opus packet (RFC 6716 3.2.5)
_G711_SILENCE = {"pcmu": 0xFF, "pcma": 0xD5}
CLOCK_RATE: dict[str | None, int] = {"opus": 48_000, "pcmu": 8_000, "pcma": 8_000}


def static_codec(payload_type: int) -> str:
    """The codec of a payload type as piphone negotiates them: 0 PCMU, 8 PCMA, dynamic Opus."""
    return {0: "pcmu", 8: "pcma"}.get(payload_type, "opus")


# --- Opus packets (RFC 6716 section 3) -------------------------------------------------------
def opus_frame_ms(toc: int) -> float:
    config = toc >> 3
    if config < 12:  # SILK
        return (10.0, 20.0, 40.0, 60.0)[config % 4]
    if config < 16:  # hybrid
        return (10.0, 20.0)[config % 2]
    return (2.5, 5.0, 10.0, 20.0)[config % 4]  # CELT


def _read_length(data: bytes, i: int) -> tuple[int, int]:
    if i >= len(data):
        raise ValueError("truncated frame length")
    if data[i] < 252:
        return data[i], i + 1
    if i + 1 >= len(data):
        raise ValueError("truncated frame length")
    return data[i] + 4 * data[i + 1], i + 2


def opus_frames(data: bytes) -> tuple[int, list[bytes]]:
    """(TOC byte with code 0, frames) of an Opus packet; ValueError if it is malformed."""
    if not data:
        raise ValueError("empty Opus packet")
    toc, code, body = data[0], data[0] & 3, data[1:]
    if code == 0:
        frames = [body]
    elif code == 1:
        if len(body) % 2:
            raise ValueError("code 1 packet of odd length")
        half = len(body) // 2
        frames = [body[:half], body[half:]]
    elif code == 2:
        size, i = _read_length(data, 1)
        if i + size > len(data):
            raise ValueError("code 2 frame overruns the packet")
        frames = [data[i:i + size], data[i + size:]]
    else:
        if len(data) < 2:
            raise ValueError("code 3 packet without a frame count")
        vbr, padded, count = data[1] & 0x80, data[1] & 0x40, data[1] & 0x3F
        if count == 0:
            raise ValueError("code 3 packet with no frames")
        i, padding = 2, 0
        while padded:
            if i >= len(data):
                raise ValueError("truncated padding length")
            padded = data[i] == 255
            padding += 254 if padded else data[i]
            i += 1
        end = len(data) - padding
        if vbr:
            sizes = []
            for _ in range(count - 1):
                size, i = _read_length(data, i)
                sizes.append(size)
            sizes.append(end - i - sum(sizes))
        else:
            if (end - i) % count:
                raise ValueError("code 3 CBR frames of unequal size")
            sizes = [(end - i) // count] * count
        if end < i or min(sizes) < 0:
            raise ValueError("code 3 frames overrun the packet")
        frames = []
        for size in sizes:
            frames.append(data[i:i + size])
            i += size
    if any(len(f) > 1275 for f in frames):
        raise ValueError("Opus frame longer than 1275 bytes")
    return toc & ~3, frames


def opus_packet(toc: int, frames: list[bytes]) -> bytes:
    """One Opus packet carrying ``frames`` (all of configuration ``toc``), code 0 or 3 VBR."""
    if len(frames) == 1:
        return bytes([toc & ~3]) + frames[0]
    header = bytearray([(toc & ~3) | 3, 0x80 | len(frames)])
    for frame in frames[:-1]:
        size = len(frame)
        if size < 252:
            header.append(size)
        else:
            first = 252 + (size & 3)
            header += bytes([first, (size - first) >> 2])
    return bytes(header) + b"".join(frames)


# --- the buffer ------------------------------------------------------------------------------
@dataclass(frozen=True)
class JitterStats:
    target_depth: int  # frames the buffer means to keep back now
    depth: int  # frames waiting in the buffer now
    jitter_ms: float  # RFC 3550 interarrival jitter
    received: int  # packets added (duplicates and late ones included)
    released: int  # real frames handed to the decoder
    concealed: int  # slots filled by concealment (Opus PLC or silence)
    lost: int  # slots skipped (concealed or not)
    late: int  # packets that arrived after their slot was skipped (dropped)
    duplicates: int  # packets received twice (dropped)
    dropped: int  # frames discarded to shrink the delay after jitter subsided
    resets: int  # times the stream restarted (sequence far behind)
    bytes_received: int = 0  # RTP payload bytes added (aiortc's stats do not count them)


class AudioJitterBuffer:
    """Stands in for aiortc's audio ``JitterBuffer``; see the module doc."""

    def __init__(self, *, min_depth: int = 1, max_depth: int = 10, max_conceal: int = 3,
                 shrink_after: int = 50, jitter_factor: float = 2.0,
                 codec_of: Callable[[int], str | None] = static_codec,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= min_depth <= max_depth:
            raise ValueError("need 0 <= min_depth <= max_depth")
        self.min_depth, self.max_depth = min_depth, max_depth
        self.max_conceal = max_conceal
        self.shrink_after = shrink_after
        self.jitter_factor = jitter_factor
        self._codec_of = codec_of
        self._clock = clock
        self._held: dict[int, tuple[RtpPacket, float]] = {}  # extended seq -> (packet, arrival)
        self._next: int | None = None  # extended seq of the next slot to release
        self._highest = 0
        self._released_recently: deque[int] = deque(maxlen=2 * MAX_MISORDER)
        self._released_set: set[int] = set()
        self._last_timestamp: int | None = None
        # (codec, seq, timestamp) of the last release
        self._previous_real: tuple[str | None, int, int] | None = None
        self._codec: str | None = None  # of the latest packet
        self._step: dict[str | None, int] = {}  # RTP timestamp units per sequence number
        self._opus_toc = 0x78  # configuration for concealment before any Opus packet
        self._peak = 0  # deepest reordering seen lately, frames
        self._calm = 0
        self._jitter = 0.0  # RFC 3550 J, in RTP units of _rate
        self._rate = 48_000
        self._last_transit: float | None = None
        self.target_depth = min_depth
        self._counts = dict(received=0, released=0, concealed=0, lost=0, late=0, duplicates=0,
                            dropped=0, resets=0, bytes_received=0)

    @property
    def capacity(self) -> int:  # aiortc's JitterBuffer has one; nothing in aiortc reads it
        return self.max_depth + 1

    @property
    def depth(self) -> int:
        return len(self._held)

    @property
    def received(self) -> int:
        """Packets added so far (what the reconnection watchdog polls, without stats())."""
        return self._counts["received"]

    def reorder_only(self) -> None:
        """Keep no cushion against timing jitter, only hold frames back while packets arrive
        out of order (an exchange forwarding them: the far end's buffer absorbs the jitter)."""
        self.min_depth = self.target_depth = 0
        self.jitter_factor = 0.0

    def stats(self) -> JitterStats:
        return JitterStats(target_depth=self.target_depth, depth=self.depth,
                           jitter_ms=self._jitter * 1000 / self._rate, **self._counts)

    # --- aiortc's interface ----------------------------------------------------------------
    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        now = self._clock()
        counts = self._counts
        counts["received"] += 1
        counts["bytes_received"] += len(packet.payload)
        if self._next is None:
            self._next = self._highest = packet.sequence_number
        seq = self._extend(packet.sequence_number)
        self._codec = self._codec_of(packet.payload_type)
        if seq < self._next - MAX_MISORDER:
            self._reset(seq)
        if (seq < self._next and seq in self._released_set) or seq in self._held:
            counts["duplicates"] += 1
            return False, None
        self._measure(packet, now)
        if seq < self._next:
            counts["late"] += 1
            self._reordered(self._highest - seq)
            return False, None
        if seq < self._highest:
            self._reordered(self._highest - seq)
        else:
            self._calm_packet()
        self._highest = max(self._highest, seq)
        self._held[seq] = (packet, now)
        return False, self._release(now)

    # --- inside ----------------------------------------------------------------------------
    def _extend(self, sequence_number: int) -> int:
        delta = (sequence_number - self._highest) & 0xFFFF
        if delta >= 0x8000:
            delta -= 0x10000
        return self._highest + delta

    def _reset(self, seq: int) -> None:
        self._counts["resets"] += 1
        self._held.clear()
        self._released_recently.clear()
        self._released_set.clear()
        self._next = self._highest = seq
        self._last_timestamp = None

    def _measure(self, packet: RtpPacket, now: float) -> None:
        """RFC 3550 interarrival jitter, in arrival order."""
        rate = CLOCK_RATE.get(self._codec, 48_000)
        if rate != self._rate:
            self._rate, self._last_transit, self._jitter = rate, None, 0.0
        transit = now * rate - packet.timestamp
        if self._last_transit is not None:
            d = abs(transit - self._last_transit)
            if d < rate:  # a second or more is a timestamp jump, not jitter
                self._jitter += (d - self._jitter) / 16
        self._last_transit = transit

    def _reordered(self, displacement: int) -> None:
        if displacement >= self._peak:
            self._peak, self._calm = displacement, 0
        self._retarget()

    def _calm_packet(self) -> None:
        self._calm += 1
        if self._calm >= self.shrink_after and self._peak > 0:
            self._peak -= 1
            self._calm = 0
        self._retarget()

    def _retarget(self) -> None:
        frame = self._step_of(self._codec) or 960
        need = max(self._peak, math.ceil(self.jitter_factor * self._jitter / frame - 1e-9))
        self.target_depth = max(self.min_depth, min(self.max_depth, need))

    def _step_of(self, codec: str | None) -> int | None:
        if codec is None:
            return None
        return self._step.get(codec, {"opus": 960, "pcmu": 160, "pcma": 160}.get(codec))

    def _release(self, now: float) -> JitterFrame | None:
        """Skip a hole that waited long enough, then release at most one real frame (with the
        concealment of the slots skipped right before it)."""
        assert self._next is not None  # set by the first add()
        concealed: list[int] = []  # sequence numbers of slots to conceal
        real = None
        frame_time = (self._step_of(self._codec) or 960) / CLOCK_RATE.get(self._codec, 48_000)
        while self._held:
            if self._next in self._held:
                if len(self._held) <= self.target_depth:
                    break
                if real is not None:  # more than the target waits: shrink the delay
                    self._held.pop(self._next)
                    self._counts["dropped"] += 1
                    self._mark_released(self._next)
                    self._next += 1
                    break
                real = (self._next, self._held.pop(self._next)[0])
                self._mark_released(self._next)
                self._next += 1
                continue
            if real is not None:
                break
            first = min(self._held)
            waited = now - min(arrival for _, arrival in self._held.values())
            if len(self._held) <= self.target_depth and \
                    waited < (self.target_depth + 1) * frame_time:
                break
            gap = first - self._next
            self._counts["lost"] += gap
            take = min(gap, self.max_conceal)
            concealed = list(range(first - take, first))
            self._next = first
        if real is None and not concealed:
            return None
        return self._frame(concealed, real)

    def _mark_released(self, seq: int) -> None:
        if len(self._released_recently) == self._released_recently.maxlen:
            self._released_set.discard(self._released_recently[0])
        self._released_recently.append(seq)
        self._released_set.add(seq)

    def _frame(self, concealed: list[int], real: tuple[int, RtpPacket] | None
               ) -> JitterFrame | None:
        if real is not None:
            seq, packet = real
            codec = self._codec_of(packet.payload_type)
            self._learn_step(codec, seq, packet.timestamp)
            payload: bytes = packet._data  # type: ignore[attr-defined]  # aiortc's depayload
            if codec == "opus" and payload:
                self._opus_toc = payload[0] & ~3
            anchor_seq, anchor_ts = seq, packet.timestamp
        else:
            seq = min(self._held)  # concealment alone: the frame after the gap dates it
            packet = self._held[seq][0]
            codec = self._codec_of(packet.payload_type)
            anchor_seq, anchor_ts = seq, packet.timestamp
        step = self._step_of(codec) or 960
        data = self._conceal(codec, len(concealed), real[1] if real else None)
        if data is None:  # could not conceal (unknown codec, odd Opus packet): the frame alone
            concealed = []
            data = real[1]._data if real else None  # type: ignore[attr-defined]
        if data is None:
            return None
        self._counts["concealed"] += len(concealed)
        if real is not None:
            self._counts["released"] += 1
        start_seq = concealed[0] if concealed else anchor_seq
        timestamp = (anchor_ts - (anchor_seq - start_seq) * step) & 0xFFFFFFFF
        if self._last_timestamp is not None:
            ahead = (timestamp - self._last_timestamp) & 0xFFFFFFFF
            if ahead == 0 or ahead >= 0x80000000:  # never backwards, never the same
                timestamp = (self._last_timestamp + 1) & 0xFFFFFFFF
        self._last_timestamp = timestamp
        return JitterFrame(data=data, timestamp=timestamp)

    def _learn_step(self, codec: str | None, seq: int, timestamp: int) -> None:
        previous = self._previous_real
        if previous is not None and previous[0] == codec and 0 < seq - previous[1] <= 4:
            step = ((timestamp - previous[2]) & 0xFFFFFFFF) // (seq - previous[1])
            if 0 < step <= 5760:
                self._step[codec] = step
        self._previous_real = (codec, seq, timestamp)

    def _conceal(self, codec: str | None, count: int,
                 packet: RtpPacket | None) -> bytes | None:
        data: bytes | None = (packet._data  # type: ignore[attr-defined]
                              if packet is not None else None)
        if count == 0:
            return data
        if codec in _G711_SILENCE:
            silence = bytes([_G711_SILENCE[codec]]) * count * (self._step_of(codec) or 160)
            return silence + (data or b"")
        if codec != "opus":
            return None
        try:
            if data is not None:
                toc, frames = opus_frames(data)
            else:
                toc, frames = self._opus_toc, []
        except ValueError:
            return None
        if (count + len(frames)) * opus_frame_ms(toc) > OPUS_MAX_DURATION:
            return None
        return opus_packet(toc, [b""] * count + frames)
