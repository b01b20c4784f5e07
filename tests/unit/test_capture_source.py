"""The microphone as a call's source (audio/pcm_io.CaptureSource), against a capture that
delivers blocks on the loop as alsa.Capture does, on a virtual clock: blocks in order, a
reader that fell behind hears the newest, a stalled device gives silence once a STALL with a
warning, stop ends a waiting read, and no timer is armed per block."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from piphone.audio.pcm_io import QUEUE_PERIODS, STALL, CaptureSource
from piphone.pcm import EndOfStream

from ..virtual_clock import virtual_clock


class FakeCapture:
    device = "fake_cap"

    def __init__(self) -> None:
        self.subscribers: list[Callable[[np.ndarray], None]] = []

    def subscribe(self, deliver: Callable[[np.ndarray], None]) -> None:
        self.subscribers.append(deliver)

    def unsubscribe(self, deliver: Callable[[np.ndarray], None]) -> None:
        self.subscribers.remove(deliver)

    def emit(self, value: int) -> None:
        """One 20 ms block of ``value``, delivered on the loop (alsa.Capture's _call)."""
        block = np.full(960, value, np.int16)
        loop = asyncio.get_running_loop()
        for deliver in list(self.subscribers):
            loop.call_soon(deliver, block)


async def waiting_source(capture: FakeCapture, *, gain: float = 1.0,
                         ) -> tuple[CaptureSource, asyncio.Future[np.ndarray]]:
    """A source and its first read, waiting (one loop turn: the read has subscribed)."""
    source = CaptureSource(capture, gain=gain)
    first = asyncio.ensure_future(source.read())
    await asyncio.sleep(0)
    return source, first


async def values_read(source: CaptureSource, first: asyncio.Future[np.ndarray],
                      count: int) -> list[int]:
    """The first sample of ``first``'s block and of the blocks read after it."""
    return [int((await first)[0])] + [int((await source.read())[0]) for _ in range(count - 1)]


async def emit_every_20ms(capture: FakeCapture, values: range) -> None:
    for value in values:
        await asyncio.sleep(0.02)
        capture.emit(value)


@virtual_clock
async def test_blocks_come_in_order_at_the_devices_pace_with_the_gain():
    capture = FakeCapture()
    source, first = await waiting_source(capture, gain=2.0)
    assert len(capture.subscribers) == 1  # lazy: subscribed at the first read
    feeding = asyncio.ensure_future(emit_every_20ms(capture, range(1, 11)))
    got = await values_read(source, first, 10)
    assert got == [2 * v for v in range(1, 11)]
    await feeding
    source.stop()
    assert capture.subscribers == []
    with pytest.raises(EndOfStream):
        await source.read()


@virtual_clock
async def test_a_reader_that_fell_behind_hears_the_newest_blocks():
    capture = FakeCapture()
    source, reading = await waiting_source(capture)
    capture.emit(0)
    await reading
    for value in range(1, 11):  # ten blocks while nobody reads
        capture.emit(value)
    await asyncio.sleep(0)
    got = [int((await source.read())[0]) for _ in range(QUEUE_PERIODS)]
    assert got == list(range(11 - QUEUE_PERIODS, 11))


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def warnings_of(name: str) -> Iterator[Records]:
    """The warnings logger ``name`` logs meanwhile (a virtual-clock test takes no fixtures:
    no caplog)."""
    records, logger = Records(), logging.getLogger(name)
    logger.addHandler(records)
    try:
        yield records
    finally:
        logger.removeHandler(records)


@virtual_clock
async def test_a_stalled_device_gives_silence_once_a_stall_with_a_warning():
    with warnings_of("piphone.audio.pcm_io") as records:
        loop = asyncio.get_running_loop()
        capture = FakeCapture()
        source, reading = await waiting_source(capture)
        capture.emit(7)
        assert int((await reading)[0]) == 7
        stalled_at = loop.time()
        silent = await source.read()  # nothing comes from the device any more
        assert not silent.any() and len(silent) == 960
        assert loop.time() - stalled_at == pytest.approx(STALL, abs=0.01)
        assert records.messages == [f"no audio from fake_cap for {STALL} s"]
        await source.read()
        assert loop.time() - stalled_at == pytest.approx(2 * STALL, abs=0.01)
        feeding = asyncio.ensure_future(emit_every_20ms(capture, range(100, 103)))
        assert [int((await source.read())[0]) for _ in range(3)] == [100, 101, 102]
        await feeding


@virtual_clock
async def test_while_blocks_flow_no_silence_and_no_timer_per_block():
    loop = asyncio.get_running_loop()
    timers = 0
    call_at = loop.call_at

    def counting(when, callback, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal timers
        if callback is not asyncio.futures._set_result_unless_cancelled:  # not a sleep's
            timers += 1
        return call_at(when, callback, *args, **kwargs)

    loop.call_at = counting  # type: ignore[method-assign]  # this test's own loop
    capture = FakeCapture()
    source, first = await waiting_source(capture)
    feeding = asyncio.ensure_future(emit_every_20ms(capture, range(1, 251)))  # 5 s
    got = await values_read(source, first, 250)
    await feeding
    assert got == list(range(1, 251))  # not a silent block among them
    assert timers <= 5 / STALL + 1  # a look a STALL, not one per block (250 of them)


@virtual_clock
async def test_stop_ends_a_waiting_read():
    source, reading = await waiting_source(FakeCapture())
    await asyncio.sleep(0.1)
    source.stop()
    with pytest.raises(EndOfStream):
        await reading
