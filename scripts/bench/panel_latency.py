#!/usr/bin/env python3
"""The panel's share of the appliance's latency budgets, on gpiozero's mock pins.

1. press -> event: a pin edge driven from a worker thread (as gpiozero's own threads deliver
   edges on a Pi) -> ``PanelInput`` in the owner's callback on the event loop. Reference: a
   bare ``loop.call_soon_threadsafe`` hop, the floor any thread-to-loop handover pays.
   The appliance's budget for hook lifted -> ``answer`` frame is 20 ms.
2. show -> lit: ``Leds.show({"ring": BLINK_FAST})`` -> the ring LED's pin high. Reference: a
   gpiozero ``PWMLED.on()``. The budget for invite -> ringing LED on is 30 ms.

No network is used. Figures are medians and 99th percentiles in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))

from piphone.panel.inputs import Inputs, PanelInput  # noqa: E402
from piphone.panel.leds import Leds, Pattern  # noqa: E402
from piphone.panel.pins import DEFAULT_PINS, mock_factory  # noqa: E402


def summary(name: str, samples: list[float], ref: list[float] | None = None) -> str:
    ms = sorted(s * 1000 for s in samples)
    p50, p99 = statistics.median(ms), ms[int(len(ms) * 0.99) - 1]
    line = f"{name:<36} median {p50:7.3f} ms   p99 {p99:7.3f} ms   (n={len(ms)})"
    if ref:
        r50 = statistics.median(ref) * 1000
        line += f"   {p50 / r50:5.1f}x the reference"
    return line


async def hop_reference(n: int) -> list[float]:
    loop = asyncio.get_running_loop()
    out: list[float] = []
    for _ in range(n):
        done = asyncio.Event()
        t0 = [0.0]

        def arrived(t0=t0, done=done) -> None:
            out.append(time.perf_counter() - t0[0])
            done.set()

        def worker(t0=t0, arrived=arrived) -> None:
            t0[0] = time.perf_counter()
            loop.call_soon_threadsafe(arrived)

        threading.Thread(target=worker).start()
        await done.wait()
    return out


async def press_to_event(n: int, debounce: float) -> list[float]:
    loop = asyncio.get_running_loop()
    factory = mock_factory()
    arrived: asyncio.Queue[tuple[PanelInput, float]] = asyncio.Queue()
    inputs = Inputs(DEFAULT_PINS, lambda e: arrived.put_nowait((e, time.perf_counter())),
                    loop=loop, debounce=debounce, pin_factory=factory)
    hook = factory.pin(DEFAULT_PINS.inputs["hook"].pin)
    out: list[float] = []
    try:
        for i in range(n):
            t0 = [0.0]
            lift = i % 2 == 0  # alternate lift and replace: each is a fresh press

            def worker(t0=t0, lift=lift) -> None:
                t0[0] = time.perf_counter()
                hook.drive_low() if lift else hook.drive_high()

            threading.Thread(target=worker).start()
            _, t1 = await arrived.get()
            out.append(t1 - t0[0])
            await inputs.settled()
    finally:
        inputs.close()
    return out


def show_to_lit(n: int) -> tuple[list[float], list[float]]:
    from gpiozero import PWMLED

    factory = mock_factory()
    ring = DEFAULT_PINS.leds["ring"]
    shows: list[float] = []
    refs: list[float] = []
    leds = Leds(DEFAULT_PINS, pin_factory=factory)
    pin = factory.pin(ring)
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            leds.show({"ring": Pattern.BLINK_FAST})
            while not pin.state:  # lit by gpiozero's blink thread
                time.sleep(0)
            shows.append(time.perf_counter() - t0)
            leds.show({})
    finally:
        leds.close()
    led = PWMLED(ring, pin_factory=factory)
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            led.on()
            refs.append(time.perf_counter() - t0)
            led.off()
    finally:
        led.close()
    return shows, refs


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="samples per figure")
    parser.add_argument("--debounce", type=float, default=0.03, help="seconds (the default)")
    args = parser.parse_args(argv)
    ref = await hop_reference(args.n)
    press = await press_to_event(args.n, args.debounce)
    shows, led_ref = show_to_lit(args.n)
    print(summary("thread -> loop hop (reference)", ref))
    print(summary("hook edge -> PanelInput on the loop", press, ref))
    print(summary("PWMLED.on() (reference)", led_ref))
    print(summary("Leds.show(BLINK_FAST) -> pin high", shows, led_ref))
    ok = statistics.median(press) < 0.020 and statistics.median(shows) < 0.030
    print("within the appliance's budgets (20 ms, 30 ms):", "yes" if ok else "NO")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
