"""The exchange's signaling under 10,000 generated frames (issue 14), then a real call.

The engine is scripts/bench/fuzz_signaling.py (the same strategies and replay, run longer and
with any seed there); here it runs with its fixed CI seed, so CI sends the same frames every
time (the order in which four lanes interleave still varies). One fuzzing run per module; each
check is its own test, so that a known finding is marked on its own check.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import sys
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from piphone.exchange import config as exchange_config
from piphone.exchange.server import Exchange
from piphone.pcm import Recorder, Tone
from piphone.voice import Device
from piphone.voice.tokens import mint

from ..conftest import LOOPBACK, Phone, until
from .helpers import hears, place_and_answer
from .leaks import open_peer_connections

pytestmark = [pytest.mark.net, pytest.mark.asyncio(loop_scope="module")]

FRAMES = 10_000
ENGINE = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "fuzz_signaling.py"


def engine() -> Any:
    spec = importlib.util.spec_from_file_location("fuzz_signaling", ENGINE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_signaling", module)
    spec.loader.exec_module(module)
    return module


@dataclass
class Fuzzed:
    exchange: Exchange
    report: Any
    left: dict[str, int]
    sockets_before: Counter  # by kind (fuzz_signaling.socket_kinds)
    sockets_after: Counter


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fuzzed(tmp_path_factory):
    fuzz = engine()
    started = time.perf_counter()
    work = fuzz.batches(FRAMES)  # fuzz.CI_SEED: the same frames every run
    generated = time.perf_counter() - started
    path = exchange_config.write_starter(tmp_path_factory.mktemp("fuzz") / "exchange.toml")
    # Many bad frames a session: the fuzzer's sessions should reach the handlers, not be cut
    # off after 20 (that limit has its own test).
    cfg = replace(exchange_config.load(path), port=0, ice_addresses=LOOPBACK,
                  reconnect_grace=0.5)
    cfg = replace(cfg, limits=replace(cfg.limits, max_bad_frames=1_000_000))
    exchange = Exchange(cfg)
    await exchange.start(host="127.0.0.1", port=0)
    try:
        before = fuzz.socket_kinds()
        report = await fuzz.Fuzzer(exchange, await fuzz.offer_sdp()).run(work, deadline=60)
        left = await fuzz.settle(exchange, cfg.reconnect_grace + 10)
        with contextlib.suppress(AssertionError):  # the checks below say what is left
            await until(lambda: fuzz.socket_kinds()["tcp"] <= before["tcp"], 5,
                        "signaling sockets to close")
        after = fuzz.socket_kinds()
        print(f"\nfuzz: {report.frames} frames in {report.sessions} sessions, generated in "
              f"{generated:.1f} s, sent in {report.seconds:.1f} s "
              f"({report.frames / report.seconds:.0f} frames/s); closes {dict(report.closes)}; "
              f"replies {dict(report.replies.most_common(8))}; left {left}; sockets "
              f"{dict(before)} -> {dict(after)}")
        yield Fuzzed(exchange, report, left, before, after)
    finally:
        await exchange.close()


async def test_10000_generated_frames_end_no_session_unexpectedly(fuzzed):
    report = fuzzed.report
    assert report.frames >= FRAMES, report.findings()
    assert report.bad_closes == [], report.findings()
    assert report.unanswered_probes == 0
    assert report.replies["error"] > 1000  # the malformed ones were answered, not ignored
    assert report.replies["answer"] > 0  # and real invites were answered among them


async def test_no_frame_hits_an_internal_error(fuzzed):
    assert fuzzed.report.internal_errors == [], fuzzed.report.findings()


async def test_the_exchange_logs_no_error(fuzzed):
    assert fuzzed.report.errors_logged == [], fuzzed.report.findings()


async def test_no_session_registration_or_signaling_socket_is_left(fuzzed):
    assert fuzzed.left["sessions"] == 0 and fuzzed.left["registrations"] == 0
    assert fuzzed.sockets_after["tcp"] <= fuzzed.sockets_before["tcp"]


async def test_no_media_socket_is_left(fuzzed):
    assert fuzzed.sockets_after["udp"] <= fuzzed.sockets_before["udp"], (
        fuzzed.sockets_before, fuzzed.sockets_after)


async def test_no_call_or_leg_is_left(fuzzed):
    assert fuzzed.left["calls"] == 0 and fuzzed.left["legs"] == 0, fuzzed.left


async def test_no_peer_connection_is_left(fuzzed):
    assert fuzzed.left["peer connections"] == 0, fuzzed.left


async def test_the_exchange_still_serves_a_real_call(fuzzed):
    exchange = fuzzed.exchange
    phones = []
    try:
        for identity, tone in (("alice", 440.0), ("bob", 880.0)):
            recorders: list[Recorder] = []

            def sink(recorders=recorders) -> Recorder:
                recorders.append(Recorder(seconds=5))
                return recorders[-1]

            device = Device(mint(identity=identity, ttl=600, **exchange.config.token_kwargs()),
                            signaling_url=exchange.url, ice_addresses=LOOPBACK,
                            audio_source=lambda tone=tone: Tone(tone), audio_sink=sink)
            phones.append(Phone(device, tone, recorders))
            await device.register()
        alice, bob = phones
        outgoing, incoming, out, inc = await place_and_answer(alice, bob)
        await hears(alice, 880)
        await hears(bob, 440)
        outgoing.disconnect()
        await inc.wait("disconnect")
    finally:
        for phone in phones:
            await asyncio.wait_for(phone.device.destroy(), 10)
    left = await engine().settle(exchange, 5)
    assert not any(left.values()), left
    assert open_peer_connections() == []
