"""piphone's audio jitter buffer (voice/rtc/jitter.py) on synthetic RTP with a fake clock.

Each packet carries its own sequence number in its Opus frame, so a test can read back which
packets came out, in what order, and which slots were concealed (empty Opus frames). "Lag" is
how many frames the buffer holds back: the newest sequence number received minus the newest
one released. aiortc's own buffer is fed the same sequences to show what we fix.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from aiortc import RTCRtpReceiver
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

from piphone.voice.rtc import hooks as rtc_hooks
from piphone.voice.rtc.encoding import VoiceEncoder
from piphone.voice.rtc.frames import audio_frame
from piphone.voice.rtc.jitter import AudioJitterBuffer, opus_frames, opus_packet

TOC = 0x78  # Opus config 15 (hybrid fullband 20 ms), code 0
FRAME = 0.020


def packet(seq: int, payload: bytes | None = None, payload_type: int = 111) -> RtpPacket:
    step = 160 if payload_type in (0, 8) else 960
    p = RtpPacket(payload_type=payload_type, sequence_number=seq & 0xFFFF,
                  timestamp=(seq * step) & 0xFFFFFFFF)
    p.payload = payload if payload is not None else bytes([TOC]) + seq.to_bytes(4, "big") + b"v"
    p._data = p.payload  # what aiortc's receiver sets (depayload) before add()
    return p


class Run:
    """Feeds a buffer (ours or aiortc's) and reads back what came out."""

    def __init__(self, buffer) -> None:
        self.buffer = buffer
        self.now = 0.0
        if isinstance(buffer, AudioJitterBuffer):
            buffer._clock = lambda: self.now
        self.released: list[int] = []  # real frames, in release order (sequence numbers)
        self.slots: list[int | None] = []  # released frames with None for each concealed slot
        self.timestamps: list[int] = []
        self.lags: list[int | None] = []
        self.depths: list[int] = []
        self.highest = -1

    def feed(self, arrivals) -> Run:
        """``arrivals``: (seq, arrival time in s) in arrival order, or bare seqs (then each
        arrives at its own 20 ms slot)."""
        for item in arrivals:
            seq, at = item if isinstance(item, tuple) else (item, item * FRAME)
            self.now = max(self.now, at)
            base = seq % 65536 if seq >= 0 else seq
            _, frame = self.buffer.add(packet(base + (seq - base)))
            self.highest = max(self.highest, seq)
            if frame is not None:
                self.timestamps.append(frame.timestamp)
                _, frames = opus_frames(frame.data)
                for f in frames:
                    self.slots.append(int.from_bytes(f[:4], "big") if f else None)
                    if f:
                        self.released.append(int.from_bytes(f[:4], "big"))
            self.lags.append(self.highest - self.released[-1] if self.released else None)
            if isinstance(self.buffer, AudioJitterBuffer):
                self.depths.append(self.buffer.depth)
        return self


def test_in_order_releases_each_frame_one_behind():
    run = Run(buf := AudioJitterBuffer()).feed(range(100))
    assert run.released == list(range(99))
    assert set(run.lags[1:]) == {1} and set(run.depths) == {1}
    s = buf.stats()
    assert (s.target_depth, s.depth, s.released, s.received) == (1, 1, 99, 100)
    assert s.concealed == s.lost == s.late == s.duplicates == s.dropped == 0
    assert s.jitter_ms < 0.01


def test_one_loss_stock_aiortc_delay_grows_for_good_ours_returns_to_the_floor():
    seqs = [s for s in range(300) if s != 100]
    stock = Run(JitterBuffer(capacity=16, prefetch=4)).feed(seqs)
    ours = Run(AudioJitterBuffer()).feed(seqs)
    # Stock aiortc: 4 frames (80 ms) behind before the loss, then about 14 for good.
    assert set(stock.lags[20:99]) == {4}
    assert min(stock.lags[150:]) >= 12
    assert stock.released[-1] <= 299 - 12
    # Ours: one frame behind before, during (at most two) and after the loss.
    assert set(ours.lags[1:99]) == {1}
    assert max(ours.lags[1:]) <= 2 and set(ours.lags[110:]) == {1}
    assert set(ours.depths[110:]) == {1}
    # The lost slot is concealed in place: the stream keeps its length and order.
    assert ours.slots == list(range(100)) + [None] + list(range(101, 299))
    s = ours.buffer.stats()
    assert (s.lost, s.concealed, s.late, s.target_depth) == (1, 1, 0, 1)


def test_a_swapped_pair_is_put_back_in_order_without_loss():
    seqs = list(range(50)) + [51, 50] + list(range(52, 100))
    run = Run(buf := AudioJitterBuffer()).feed(seqs)
    assert run.released == list(range(99))
    s = buf.stats()
    assert s.lost == s.late == s.concealed == 0 and s.target_depth == 1


def test_deeper_reordering_is_late_once_then_absorbed_and_the_depth_shrinks_back():
    # 50 arrives after 53 (60 ms late): with one frame of depth its slot has been skipped.
    seqs = list(range(50)) + [51, 52, 53, 50] + list(range(54, 80))
    # Then the same again while the buffer is deeper: this time 90 waits in its slot.
    seqs += [81, 82, 83, 80] + list(range(84, 90)) + [91, 92, 93, 90] + list(range(94, 400))
    run = Run(buf := AudioJitterBuffer(shrink_after=50)).feed(seqs)
    s = buf.stats()
    assert s.late == 1 and s.lost == 1 and s.concealed == 1
    assert 50 not in run.released and run.slots[50] is None
    assert {80, 90} <= set(run.released)
    assert run.released == sorted(run.released)
    assert max(run.depths) == 3  # grew to the reordering seen...
    assert s.target_depth == 1 and set(run.depths[-100:]) == {1}  # ...and back to its floor
    assert s.dropped == 2  # shrinking from 3 to 1 frames discarded two frames
    assert set(run.lags[-100:]) == {1}


def test_duplicates_are_dropped_and_counted():
    seqs = [x for s in range(60) for x in (s, s)] + [10, 30]  # each twice, then two old ones
    run = Run(buf := AudioJitterBuffer()).feed(seqs)
    assert run.released == list(range(59))
    s = buf.stats()
    assert s.duplicates == 62 and s.late == 0 and s.lost == 0


def test_burst_jitter_then_calm_grows_and_returns_to_the_floor():
    rng = random.Random(5)
    # Packets 100..299 each delayed 0..70 ms at random (so they also reorder); others on time.
    arrivals = sorted(((s, s * FRAME + (rng.uniform(0, 0.070) if 100 <= s < 300 else 0.0))
                       for s in range(800)), key=lambda a: (a[1], a[0]))
    run = Run(buf := AudioJitterBuffer()).feed(arrivals)
    burst = slice(100, 300)
    assert max(run.depths[burst]) >= 3  # grew under jitter
    assert max(run.depths) <= buf.max_depth
    s = buf.stats()
    assert s.late <= 10  # most reordered packets waited for their slot
    assert s.lost == s.late and s.concealed == s.lost  # each skipped slot came late
    assert s.target_depth == 1 and set(run.depths[-100:]) == {1} and set(run.lags[-100:]) == {1}
    assert run.released == sorted(run.released)
    assert s.jitter_ms < 1.0


def test_a_hole_is_not_waited_for_longer_than_the_depth_in_time():
    # Two frames deep; 50 is lost and 51, 58 wait behind the hole; the stream stalls and 52
    # comes 300 ms later, six behind 58, which deepens the target to 6 frames. Counting alone
    # would wait for six frames after the hole; 51 has waited longer than that: skip now.
    buf = AudioJitterBuffer(min_depth=2)
    run = Run(buf).feed(list(range(50)) + [(51, 1.02), (58, 1.03), (52, 1.33)])
    assert buf.target_depth == 6
    assert run.slots == list(range(50)) + [None]  # concealment alone: 51 waits at depth 6
    s = buf.stats()
    assert (s.concealed, s.lost, s.late) == (1, 1, 0)
    run.feed([s for s in range(53, 400) if s != 58])
    assert run.slots[:53] == list(range(50)) + [None, 51, 52]
    assert run.released == sorted(run.released) and buf.stats().target_depth == 2


def test_timestamps_never_go_backwards_across_a_sequence_wrap_and_losses():
    start = 65_500
    seqs = [s for s in range(start, start + 100) if s not in (65_530, 65_536, 65_537)]
    buf = AudioJitterBuffer()
    frames = []
    now = 0.0
    for s in seqs:
        now = s * FRAME
        buf._clock = lambda now=now: now
        _, frame = buf.add(packet(s))
        if frame is not None:
            frames.append(frame)
    stamps = [f.timestamp for f in frames]
    diffs = [(b - a) & 0xFFFFFFFF for a, b in zip(stamps, stamps[1:], strict=False)]
    assert all(0 < d < 0x80000000 for d in diffs)
    s = buf.stats()
    assert s.lost == 3 and s.concealed == 3 and s.resets == 0
    assert s.released == len(seqs) - 1


def test_g711_loss_is_concealed_with_silence_of_one_frame():
    buf = AudioJitterBuffer()
    buf._clock = lambda: 0.0
    out = []
    for s in [0, 1, 2, 4, 5, 6]:
        _, frame = buf.add(packet(s, payload=bytes([s]) * 160, payload_type=0))
        out.append(frame)
    assert [len(f.data) for f in out if f] == [160, 160, 160, 320, 160]
    assert out[4].data == b"\xff" * 160 + bytes([4]) * 160
    assert out[4].timestamp == 3 * 160


def test_opus_packets_round_trip_and_concealment_decodes_as_libopus_plc():
    # code 0, 1, 2 and 3 (VBR with a two-byte length, CBR, padding) parse to their frames.
    assert opus_frames(bytes([0x78]) + b"abc") == (0x78, [b"abc"])
    assert opus_frames(bytes([0x79]) + b"abcd") == (0x78, [b"ab", b"cd"])
    assert opus_frames(bytes([0x7A, 1]) + b"abc") == (0x78, [b"a", b"bc"])
    big = b"x" * 300
    built = opus_packet(0x78, [big, b"", b"yz"])
    assert opus_frames(built) == (0x78, [big, b"", b"yz"])
    assert opus_frames(bytes([0x7B, 0x03]) + b"abc") == (0x78, [b"a", b"b", b"c"])
    assert opus_frames(bytes([0x7B, 0x42, 2]) + b"ab" + b"\0\0") == (0x78, [b"a", b"b"])
    for bad in (b"", bytes([0x79]) + b"abc", bytes([0x7B]), bytes([0x7B, 0x80])):
        with pytest.raises(ValueError):
            opus_frames(bad)

    # Real Opus through the buffer, one packet lost: libopus decodes every slot, the lost one
    # by its own concealment (a continuation of the tone, not silence).
    encoder = VoiceEncoder("opus")
    tone = (8000 * np.sin(2 * np.pi * 440 / 48000 * np.arange(48000))).astype(np.int16)
    real = []
    for i in range(30):
        real += encoder.encode(audio_frame(tone[i * 960:(i + 1) * 960], i * 960))
    buf, decoder, samples = AudioJitterBuffer(), OpusDecoder(), []
    for i, p in enumerate(real):
        if i == 15:
            continue
        buf._clock = lambda i=i: i * FRAME
        _, frame = buf.add(packet(i, payload=bytes(p)))
        if frame is not None:
            for decoded in decoder.decode(JitterFrame(frame.data, frame.timestamp)):
                samples.append(decoded.to_ndarray().reshape(-1, 2)[:, 0])
    pcm = np.concatenate(samples)
    assert len(pcm) == 29 * 960  # 28 real frames and the concealed one
    concealed = pcm[15 * 960:16 * 960].astype(float)
    assert np.sqrt(np.mean(concealed ** 2)) > 1000


def test_rtc_hook_replaces_aiortcs_buffer_on_a_real_receiver():
    class Transport:
        state = "new"

    receiver = RTCRtpReceiver("audio", Transport())
    assert isinstance(receiver._RTCRtpReceiver__jitter_buffer, JitterBuffer)
    buffer = rtc_hooks.use_jitter_buffer(receiver)
    assert isinstance(buffer, AudioJitterBuffer)
    assert receiver._RTCRtpReceiver__jitter_buffer is buffer
    with pytest.raises(rtc_hooks.HookMissing, match="_RTCRtpReceiver__jitter_buffer"):
        rtc_hooks.use_jitter_buffer(object())


def test_reorder_only_keeps_no_cushion_against_jitter_but_still_reorders():
    """What a forwarding exchange asks of its buffer (MediaSession.forward_to): frames go on
    at once, jitter adds no depth, and a swapped pair is still put back in order."""
    jittery = [(s, s * FRAME + (0.015 if s % 2 else 0.0)) for s in range(100)]
    buf = AudioJitterBuffer()
    buf.reorder_only()
    run = Run(buf).feed(jittery)
    assert run.released == list(range(100)) and set(run.depths) == {0}
    assert buf.stats().target_depth == 0 and buf.stats().jitter_ms > 5
    cushioned = Run(AudioJitterBuffer()).feed(jittery)  # the default keeps a frame or more
    assert cushioned.released[-1] < 99 and min(cushioned.depths[10:]) >= 1
    # The first swap costs its late frame (nothing was held back for it); from then on the
    # buffer holds a frame while packets come out of order, and puts the next swap back.
    buf = AudioJitterBuffer()
    buf.reorder_only()
    seqs = list(range(50)) + [51, 50] + list(range(52, 60)) + [61, 60] + list(range(62, 100))
    run = Run(buf).feed(seqs)
    assert buf.stats().late == 1 and 50 not in run.released
    assert run.released[run.released.index(59):][:3] == [59, 60, 61]
