"""Shared fixtures: a real exchange on 127.0.0.1 and Devices that call through it.

Tests that make calls need a loopback-only network namespace (the README's test command runs
pytest inside ``unshare -n``); ICE is told to offer 127.0.0.1, which aioice leaves out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import fields, replace

import pytest

from piphone.exchange import config as exchange_config
from piphone.exchange.server import ClientSession, Exchange
from piphone.pcm import Recorder, Tone
from piphone.voice import Device, protocol
from piphone.voice.tokens import mint

from .alsa_rig import alsa_rig  # noqa: F401
from .netfault import SignalingProxy

LOOPBACK = ("127.0.0.1",)


@pytest.fixture
def exchange_cfg(tmp_path, request) -> exchange_config.ExchangeConfig:
    """The exchange's settings; change them for one test with indirect parametrization:
    ``@pytest.mark.parametrize("exchange_cfg", [{"max_calls": 1}], indirect=True)``; a key of
    ``[limits]`` (``{"send_queue": 16}``) changes ``cfg.limits``."""
    path = exchange_config.write_starter(tmp_path / "exchange.toml")
    cfg = replace(exchange_config.load(path), port=0, ice_addresses=LOOPBACK,
                  reconnect_grace=0.5)
    changes = dict(getattr(request, "param", None) or {})
    # Voicemail (on in the starter) is off unless a test asks: {"voicemail": {"enabled": True}}
    cfg = replace(cfg, voicemail=replace(cfg.voicemail, **{"enabled": False,
                                                           **changes.pop("voicemail", {})}))
    limit_names = {f.name for f in fields(exchange_config.Limits)}
    limits = {key: changes.pop(key) for key in list(changes) if key in limit_names}
    cfg = replace(cfg, **changes)
    return replace(cfg, limits=replace(cfg.limits, **limits)) if limits else cfg


@pytest.fixture
async def exchange(exchange_cfg) -> AsyncIterator[Exchange]:
    ex = Exchange(exchange_cfg)
    await ex.start(host="127.0.0.1", port=0)
    try:
        yield ex
    finally:
        await ex.close()


@pytest.fixture
async def netfault(exchange) -> AsyncIterator[SignalingProxy]:
    """A proxy in front of the exchange that can cut signaling and spoil media (netfault.py);
    ``make_phone(name, signaling_url=netfault.url)`` puts a phone behind it."""
    proxy = await SignalingProxy(exchange.url).start()
    try:
        yield proxy
    finally:
        await proxy.close()


class Phone:
    """A Device with a tone source and a recorder, plus an event log for assertions."""

    def __init__(self, device: Device, tone: float, recorders: list[Recorder]) -> None:
        self.device = device
        self.tone = tone
        self.recorders = recorders
        self.events: list[tuple] = []
        self.incoming: asyncio.Queue = asyncio.Queue()
        device.on("incoming", self.incoming.put_nowait)

    @property
    def recorder(self) -> Recorder:
        return self.recorders[-1]

    async def next_call(self, timeout: float = 5.0):
        return await asyncio.wait_for(self.incoming.get(), timeout)


@pytest.fixture
async def make_phone(exchange) -> AsyncIterator[Callable[..., Phone]]:
    phones: list[Phone] = []

    async def factory(identity: str, tone: float = 440.0, register: bool = True,
                      **options) -> Phone:
        token = mint(identity=identity, ttl=600, **exchange.config.token_kwargs())
        recorders: list[Recorder] = []

        def sink() -> Recorder:
            recorders.append(Recorder(seconds=5))
            return recorders[-1]

        options.setdefault("ice_addresses", LOOPBACK)
        options.setdefault("signaling_url", exchange.url)  # or a netfault proxy's URL
        options.setdefault("audio_source", lambda: Tone(tone))
        options.setdefault("audio_sink", sink)
        device = Device(token, **options)
        phone = Phone(device, tone, recorders)
        phones.append(phone)
        if register:
            await device.register()
        return phone

    yield factory
    for phone in phones:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(phone.device.destroy(), 10)


def record_events(emitter, names, log: list) -> None:
    """Append (name, *args) to ``log`` for each event."""
    for name in names:
        emitter.on(name, lambda *args, _n=name: log.append((_n, *args)))


async def until(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    """Wait for a condition that no single event announces (polls the loop, bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class Wire:
    """Every frame the exchange received and sent, as (identity, type, payload)."""

    def __init__(self) -> None:
        self.received: list[tuple[str | None, str, dict]] = []
        self.sent: list[tuple[str | None, str, dict]] = []

    def got(self, identity: str | None, type_: str) -> list[dict]:
        return [p for i, t, p in self.received if i == identity and t == type_]

    def to(self, identity: str | None, type_: str) -> list[dict]:
        return [p for i, t, p in self.sent if i == identity and t == type_]

    def types_from(self, identity: str | None) -> list[str]:
        return [t for i, t, _ in self.received if i == identity]


@pytest.fixture
def wire(monkeypatch) -> Wire:
    tap = Wire()
    receive, send = ClientSession._receive, ClientSession.send

    def tapped_receive(self, text):
        try:
            frame = protocol.decode(text, protocol.CLIENT_FRAMES)
        except protocol.ProtocolError:
            frame = None
        result = receive(self, text)
        if frame is not None:  # after handling, so that a listen is filed under its identity
            tap.received.append((self.identity, frame.type, frame.payload))
        return result

    def tapped_send(self, type_, **payload):
        tap.sent.append((self.identity, type_, payload))
        return send(self, type_, **payload)

    monkeypatch.setattr(ClientSession, "_receive", tapped_receive)
    monkeypatch.setattr(ClientSession, "send", tapped_send)
    return tap


logging.getLogger("aioice").setLevel(logging.WARNING)
