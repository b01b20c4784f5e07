"""Helpers of the integration tests: event logs one can await, tone checks, a call set-up."""

from __future__ import annotations

import asyncio

import numpy as np

from piphone.pcm import dominant_frequency, rms
from piphone.voice import CallStatus

from ..conftest import until

CALL_EVENTS = ("accept", "cancel", "disconnect", "error", "mute", "reject", "ringing", "dtmf",
               "status")
DEVICE_EVENTS = ("registering", "registered", "unregistered", "error", "destroyed",
                 "tokenWillExpire")


class Events:
    """Records an emitter's events as (name, args, loop time); ``wait`` awaits one."""

    def __init__(self, emitter, names=CALL_EVENTS) -> None:
        self.log: list[tuple[str, tuple, float]] = []
        self._changed = asyncio.Event()
        for name in names:
            emitter.on(name, lambda *args, _n=name: self._add(_n, args))

    def _add(self, name: str, args: tuple) -> None:
        self.log.append((name, args, asyncio.get_running_loop().time()))
        self._changed.set()

    def names(self, *, status: bool = False) -> list[str]:
        return [n for n, _, _ in self.log if status or n != "status"]

    def statuses(self) -> list[str]:
        return [a[0].value for n, a, _ in self.log if n == "status"]

    def all(self, name: str) -> list[tuple]:
        return [a for n, a, _ in self.log if n == name]

    def times(self, name: str) -> list[float]:
        return [t for n, _, t in self.log if n == name]

    async def wait(self, name: str, count: int = 1, timeout: float = 5.0) -> tuple:
        """The args of the ``count``-th ``name`` event, waiting for it at most ``timeout`` s."""

        async def arrived() -> tuple:
            while len(self.all(name)) < count:
                self._changed.clear()
                await self._changed.wait()
            return self.all(name)[count - 1]

        try:
            return await asyncio.wait_for(arrived(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {name!r} event #{count} within {timeout} s; "
                                 f"got {self.names()}") from None


def heard(phone, seconds: float = 0.4) -> float | None:
    rec = phone.recorder
    return dominant_frequency(rec.last(seconds), rec.sample_rate or 48000)


def level(phone, seconds: float = 0.3) -> float:
    return rms(phone.recorder.last(seconds))


async def hears(phone, frequency: float, timeout: float = 5.0, tolerance: float = 15) -> None:
    """Wait until the phone's latest audio is a tone of ``frequency`` Hz."""

    def ok() -> bool:
        f = heard(phone)
        return f is not None and abs(f - frequency) <= tolerance

    await until(ok, timeout, what=f"{frequency} Hz at {phone.device.identity} "
                                  f"(hearing {heard(phone)})")


async def hears_silence(phone, timeout: float = 5.0) -> None:
    await until(lambda: len(phone.recorder.last(0.3)) > 0 and level(phone) < 30, timeout,
                what=f"silence at {phone.device.identity} (rms {level(phone):.0f})")


async def place_ringing(caller, callee, params=None):
    """Caller calls callee and it rings: returns (outgoing, incoming, out_events, in_events)."""
    outgoing = await caller.device.connect(params or {"To": callee.device.identity})
    out_events = Events(outgoing)
    incoming = await callee.next_call()
    in_events = Events(incoming)
    await out_events.wait("ringing")
    return outgoing, incoming, out_events, in_events


async def place_and_answer(caller, callee, params=None):
    """Caller calls callee, callee accepts: returns (outgoing, incoming, out_events, in_events)
    with both calls open."""
    outgoing, incoming, out_events, in_events = await place_ringing(caller, callee, params)
    await asyncio.wait_for(incoming.accept(), 5)
    await out_events.wait("accept")
    await in_events.wait("accept")
    assert outgoing.status() is CallStatus.OPEN and incoming.status() is CallStatus.OPEN
    return outgoing, incoming, out_events, in_events


def silent(samples: np.ndarray) -> bool:
    return len(samples) > 0 and rms(samples) < 30


def strengths(phone, frequencies, seconds: float = 0.6) -> dict[float, float]:
    """Each frequency's share of the strongest peak in what the phone heard lately."""
    rec = phone.recorder
    rate = rec.sample_rate or 48000
    x = rec.last(seconds).astype(np.float64)
    if len(x) < rate * seconds / 2:
        return {f: 0.0 for f in frequencies}
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    top = float(spectrum[1:].max()) or 1.0

    def near(f: float) -> float:
        bin_ = int(round(f * len(x) / rate))
        return float(spectrum[max(bin_ - 3, 1):bin_ + 4].max()) / top

    return {f: near(f) for f in frequencies}
