"""Headset hot-plug on the ALSA rig: a pulled headset mid-call, and the same headset plugged
back, with no restart (audio/headset.py).

An unplug here is what the kernel does to a real USB headset: its card leaves the card list
(a file the watcher reads instead of /proc/asound/cards) and its PCMs fail reads, writes and
opens (the rig's unplug)."""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import pytest

from piphone.audio import tones
from piphone.audio.devices import AudioDeviceError
from piphone.audio.headset import Headset
from piphone.pcm import dominant_frequency, rms
from piphone.voice import Device
from piphone.voice.call import CallStatus
from piphone.voice.tokens import mint

from ..conftest import LOOPBACK, Phone, until
from .helpers import place_and_answer

pytestmark = pytest.mark.net

RATE = 48_000
USB_CARD = (" 0 [Device         ]: USB-Audio - USB PnP Sound Device\n"
            "                      C-Media Electronics Inc. USB PnP Sound Device\n")
OTHER_CARD = (" 1 [PCH            ]: HDA-Intel - HDA Intel PCH\n"
              "                      HDA Intel PCH at 0xf7f10000 irq 33\n")


class Events:
    """A headset's lost/back events, each with the loop time it came at."""

    def __init__(self, headset: Headset) -> None:
        self.seen: list[tuple[str, float]] = []
        self._queue: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        for name in ("lost", "back"):
            headset.on(name, lambda *args, name=name: self._note(name, loop.time()))

    def _note(self, name: str, at: float) -> None:
        self.seen.append((name, at))
        self._queue.put_nowait(name)

    async def next(self, timeout: float) -> str:
        return await asyncio.wait_for(self._queue.get(), timeout)


@pytest.fixture
def cards(tmp_path):
    """The card list the watcher reads; ``cards.unplug()``/``replug()`` edit it."""
    path = tmp_path / "cards"

    class Cards:
        def __init__(self) -> None:
            self.path = path
            self.replug()

        def unplug(self) -> None:
            path.write_text(OTHER_CARD)

        def replug(self) -> None:
            path.write_text(USB_CARD + OTHER_CARD)

    return Cards()


def rig_headset(alsa_rig, name: str, cards=None) -> Headset:
    h = alsa_rig[name]
    if cards is None:
        return Headset(h.cap, h.play, monitor=None)
    return Headset(h.cap, h.play, card="USB", cards_path=cards.path, poll_interval=0.05,
                   monitor=None)


def tone_in(samples: np.ndarray, hz: float) -> bool:
    f = dominant_frequency(samples, RATE) if len(samples) else None
    return f is not None and abs(f - hz) < 5 and rms(samples) > 300


async def test_call_stays_up_through_unplug_and_replug(exchange, alsa_rig, cards):
    alsa_rig["a"].tone(600)
    alsa_rig["b"].tone(900)
    alice = rig_headset(alsa_rig, "a", cards)
    events = Events(alice)
    from piphone.audio.alsa import Capture, Playback

    bob_streams = (Capture(alsa_rig["b"].cap), Playback(alsa_rig["b"].play))
    phones: list[Phone] = []
    bob_ear, alice_ear = alsa_rig["b"], alsa_rig["a"]
    try:
        alice.open()
        assert alice.present
        for identity, source, sink in (("alice", alice.source, alice.sink),
                                       ("bob", lambda: _source(bob_streams[0]),
                                        lambda: _sink(bob_streams[1]))):
            token = mint(identity=identity, ttl=600, **exchange.config.token_kwargs())
            device = Device(token, signaling_url=exchange.url, ice_addresses=LOOPBACK,
                            audio_source=source, audio_sink=sink)
            await device.register()
            phones.append(Phone(device, 0, []))
        outgoing, incoming, _, _ = await place_and_answer(*phones)
        await until(lambda: tone_in(bob_ear.recorded()[-RATE // 2:], 600), 5,
                    what="alice's 600 Hz in bob's earpiece")
        await until(lambda: tone_in(alice_ear.recorded()[-RATE // 2:], 900), 5,
                    what="bob's 900 Hz in alice's earpiece")

        # Pulled out: the card leaves the list and the device fails.
        alsa_rig.unplug("a")
        cards.unplug()
        assert await events.next(2) == "lost"
        assert not alice.present
        await until(lambda: rms(bob_ear.recorded()[-RATE // 4:]) < 30, 5,
                    what="silence in bob's earpiece while alice's headset is out")
        # The gap: a full second in which bob hears silence and the call stays open.
        gap_start = len(bob_ear.recorded())
        await until(lambda: len(bob_ear.recorded()) - gap_start >= RATE, 5,
                    what="a second of the gap recorded")
        gap = bob_ear.recorded()[gap_start:]
        assert rms(gap) < 30
        assert outgoing.status() is CallStatus.OPEN and incoming.status() is CallStatus.OPEN

        # Plugged back: the same card again. Capture and playback reopen within 2 s.
        loop = asyncio.get_running_loop()
        replugged = loop.time()
        alsa_rig.replug("a")
        cards.replug()
        assert await events.next(2) == "back"
        assert alice.present and events.seen[-1][1] - replugged < 2
        # Heard again (a quarter second of the tone) within 2 s of the replug, both ways.
        await until(lambda: tone_in(bob_ear.recorded()[-RATE // 4:], 600),
                    replugged + 2 - loop.time(),
                    what="alice's tone in bob's earpiece within 2 s of the replug")
        await until(lambda: tone_in(alice_ear.recorded()[-RATE // 4:], 900),
                    replugged + 2 - loop.time(),
                    what="bob's tone in alice's earpiece within 2 s of the replug")
        assert [name for name, _ in events.seen] == ["lost", "back"]
        assert outgoing.status() is CallStatus.OPEN
        assert alice.capture.failed is None and alice.playback.failed is None
    finally:
        for phone in phones:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(phone.device.destroy(), 10)
        await alice.close()
        for stream in bob_streams:
            await asyncio.to_thread(stream.close)


async def assert_loud_after_ten_frames(source) -> None:
    """Ten frames from ``source`` (200 ms: past any fade-in); the tenth carries the tone."""
    for _ in range(10):
        frame = await asyncio.wait_for(source.read(), 1)
    assert rms(frame) > 1000


async def silent_frames(source, count: int) -> None:
    """Read ``source`` until ``count`` frames in a row are pure silence (it keeps its pace)."""
    silent = 0
    while silent < count:
        frame = await asyncio.wait_for(source.read(), 1)
        silent = silent + 1 if rms(frame) == 0 else 0


def _source(capture):
    from piphone.audio.pcm_io import CaptureSource

    return CaptureSource(capture)


def _sink(playback):
    from piphone.audio.pcm_io import PlaybackSink

    return PlaybackSink(playback)


async def test_failed_reads_alone_make_it_lost_and_back(alsa_rig):
    """An explicit ALSA device (nothing to watch): the failed read is what tells."""
    alsa_rig["c"].tone(500)
    headset = rig_headset(alsa_rig, "c")
    events = Events(headset)
    try:
        headset.open()
        source = headset.source()
        await assert_loud_after_ten_frames(source)
        alsa_rig.unplug("c")
        assert await events.next(2) == "lost"
        await silent_frames(source, 5)  # the source goes on, in silence
        alsa_rig.replug("c")
        assert await events.next(2) == "back"
        assert headset.present
        await assert_loud_after_ten_frames(source)
        source.stop()
    finally:
        await headset.close()


async def test_card_gone_from_the_list_silences_before_any_read_fails(alsa_rig, cards):
    """The card list says gone while the device still reads: the headset is lost all the same
    (silence, no reopen tries) until the card is listed again."""
    alsa_rig["d"].tone(700)
    headset = rig_headset(alsa_rig, "d", cards)
    events = Events(headset)
    try:
        headset.open()
        source = headset.source()
        for _ in range(10):
            await asyncio.wait_for(source.read(), 1)
        cards.unplug()
        assert await events.next(2) == "lost"
        await silent_frames(source, 30)  # 0.6 s: past a reopen interval, still silent
        assert headset.capture.failed is not None
        cards.replug()
        assert await events.next(2) == "back"
        await until(lambda: headset.capture.failed is None, 2, what="capture reopened")
        await assert_loud_after_ten_frames(source)
        source.stop()
    finally:
        await headset.close()


async def test_a_headset_plugged_in_after_start_comes_back(alsa_rig, cards):
    cards.unplug()
    headset = rig_headset(alsa_rig, "b", cards)
    events = Events(headset)
    assert not headset.present
    try:
        headset.watch()
        cards.replug()
        assert await events.next(2) == "back"
        assert headset.present
    finally:
        await headset.close()


def test_a_card_name_that_matches_nothing_is_a_clear_error(cards):
    cards.unplug()
    with pytest.raises(AudioDeviceError) as info:
        Headset.from_spec("USB", cards_path=cards.path)
    assert "'USB'" in str(info.value) and "PCH" in str(info.value)
    cards.replug()
    headset = Headset.from_spec("USB", cards_path=cards.path, monitor=None)
    assert headset.capture.device == "plughw:CARD=Device,DEV=0"
    assert headset.ring is headset.playback and headset.card == "USB"
    split = Headset.from_spec("piphone_a_cap,piphone_a_play", ring="piphone_b_play")
    assert split.capture.device == "piphone_a_cap" and split.ring.device == "piphone_b_play"
    assert split.card is None and split.present
    low = Headset("piphone_a_cap", "piphone_a_play", "piphone_b_play",
                  playback_options={"period_ms": 5, "periods": 3})
    assert (low.playback.period_ms, low.playback.periods) == (5, 3)
    assert low.ring.period_ms == 5 and low.capture.period_ms == 20


async def test_piphone_call_maps_lost_and_back_to_the_calls_warning(alsa_rig, cards):
    """`piphone call` raises and clears the call's audio-device-lost (Call.set_condition)
    with the headset."""
    from piphone.cli.call import headset_warnings

    class Call:
        def __init__(self) -> None:
            self.conditions: asyncio.Queue = asyncio.Queue()

        def set_condition(self, name: str, active: bool) -> None:
            self.conditions.put_nowait((name, active))

    headset = rig_headset(alsa_rig, "a", cards)
    call = Call()
    try:
        headset.open()
        headset_warnings(headset, call)
        cards.unplug()
        assert await asyncio.wait_for(call.conditions.get(), 2) == ("audio-device-lost", True)
        cards.replug()
        assert await asyncio.wait_for(call.conditions.get(), 2) == ("audio-device-lost", False)
    finally:
        await headset.close()


async def test_a_card_that_flickers_out_and_back_before_a_read_notices(alsa_rig, cards):
    """Gone and back within one poll of the card list: lost then back, never stuck lost."""
    alsa_rig["c"].tone(500)
    headset = rig_headset(alsa_rig, "c", cards)
    events = Events(headset)
    try:
        headset.open()
        source = headset.source()
        await asyncio.wait_for(source.read(), 1)
        headset._card_changed(False)  # what the watcher calls, back to back, on the loop
        headset._card_changed(True)
        # Whether or not the capture thread saw the suspension before the resume, the
        # headset ends up present and working, and lost/back alternate, ending with back.
        await until(lambda: headset.capture.failed is None and headset.present, 2,
                    what="capture working again")
        await assert_loud_after_ten_frames(source)
        assert headset.present
        names = [name for name, _ in events.seen]
        assert names[:2] == ["lost", "back"] and names[-1] == "back"
        assert all(a != b for a, b in zip(names, names[1:], strict=False))
        source.stop()
    finally:
        await headset.close()


async def test_piphone_call_through_a_pulled_headset(exchange, alsa_rig):
    """`piphone call echo` on the rig: the headset fails mid-call and comes back; the call
    prints the headset's lost/back and the call's audio-device-lost warning and its clearing,
    stays up, and the echo is heard again."""
    from piphone.cli.call import place_call

    alsa_rig["a"].tone(700)
    lines: list[str] = []
    loop = asyncio.get_running_loop()
    heard_again = asyncio.Event()

    def out(line: str) -> None:
        lines.append(line)
        if line.endswith("accept") or " accept " in line:
            loop.call_later(1.0, alsa_rig.unplug, "a")
        elif "headset lost" in line:
            loop.call_later(0.5, alsa_rig.replug, "a")
        elif "headset back" in line:
            loop.call_later(1.5, heard_again.set)

    token = mint(identity="desk", **exchange.config.token_kwargs())
    options = {"signaling_url": exchange.url, "ice_addresses": LOOPBACK}
    headset = (alsa_rig["a"].cap, alsa_rig["a"].play)
    placing = asyncio.ensure_future(place_call(token, {"To": "echo"}, options, 440.0, 8.0,
                                                   read_digits=False, out=out,
                                                   headset=headset))
    await asyncio.wait_for(heard_again.wait(), 8)
    # the echo of the microphone's tone is back in the earpiece after the replug
    assert tone_in(alsa_rig["a"].recorded()[-RATE // 4:], 700)
    assert await asyncio.wait_for(placing, 15) == 0, lines
    text = "\n".join(lines)
    order = [next(i for i, line in enumerate(lines) if what in line)
             for what in ("headset lost", "warning audio-device-lost", "headset back",
                          "warning-cleared audio-device-lost", "hanging up")]
    assert order == sorted(order), text
    assert "disconnect" not in text.split("hanging up")[0], text  # up until we hung up


def route_usb_card_to(monkeypatch, alsa_rig, name: str) -> None:
    """The rig has no plughw: the USB card's device (what from_spec picks for ``USB``) opens
    rig headset ``name``'s capture or playback, through the rig's own seam."""
    from piphone.audio import alsa

    rig_open, h = alsa.open_pcm, alsa_rig[name]

    def open_pcm(kind, device, *args):
        if device == "plughw:CARD=Device,DEV=0":
            device = h.cap if kind == alsa.alsaaudio.PCM_CAPTURE else h.play
        return rig_open(kind, device, *args)

    monkeypatch.setattr(alsa, "open_pcm", open_pcm)


async def test_a_headset_absent_at_start_is_used_once_plugged_in(alsa_rig, cards, monkeypatch,
                                                                 caplog):
    """``from_spec(wait=True)`` with no matching card: not present, nothing opened, the log
    says it waits; the card listed: capture and playback open on it, ``back``, audio flows."""
    route_usb_card_to(monkeypatch, alsa_rig, "b")
    alsa_rig["b"].tone(900)
    cards.unplug()
    with pytest.raises(AudioDeviceError):  # without wait, still the clear error
        Headset.from_spec("USB", cards_path=cards.path, monitor=None)
    caplog.set_level("WARNING", logger="piphone.audio")
    headset = Headset.from_spec("USB", cards_path=cards.path, wait=True, poll_interval=0.05,
                                monitor=None)
    events = Events(headset)
    try:
        assert not headset.present and headset.card == "USB"
        assert "waiting for it to be plugged in" in caplog.text and "PCH" in caplog.text
        for stream in (headset.capture, headset.playback):
            stream.start(tolerate_missing=True)  # as the appliance does
        headset.watch()
        source = headset.source()
        silent = [await asyncio.wait_for(source.read(), 1) for _ in range(10)]
        assert all(rms(f) == 0 for f in silent)  # silence, at the 20 ms pace
        assert alsa_rig["b"].recorded().size == 0  # the earpiece was never opened
        assert events.seen == []  # absent from the start: nothing was lost
        plugged = asyncio.get_running_loop().time()
        cards.replug()
        assert await events.next(2) == "back"
        assert headset.present and events.seen[0][1] - plugged < 2
        assert headset.capture.device == headset.playback.device == "plughw:CARD=Device,DEV=0"
        assert "headset 'USB' plugged in: 0 Device" in caplog.text
        # the microphone is in: the tone within the next 60 frames (those queued first are
        # the silence made before the card came)
        for _ in range(60):
            frame = await asyncio.wait_for(source.read(), 1)
            if tone_in(frame, 900):
                break
        else:
            raise AssertionError("no 900 Hz from the plugged-in microphone")
        headset.playback.play_tone(tones.DIAL_TONE)  # and the earpiece plays
        await until(lambda: rms(alsa_rig["b"].recorded()[-RATE // 10:]) > 300, 2,
                    what="the dial tone in the earpiece")
        source.stop()
    finally:
        await headset.close()
