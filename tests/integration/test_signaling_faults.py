"""The signaling loop never dies (issue 13): a surprise while connecting, reading or writing is
logged once with its traceback, reported as a TwilioError (53000 connecting, 31005 an open
stream, as the SDK names them) and retried with the backoff; the device registers again.
And with several URLs (an edge list) it falls back in the SDK's order."""

from __future__ import annotations

import logging

import pytest

from piphone.voice import protocol, signaling

from ..conftest import until
from .helpers import DEVICE_EVENTS, Events

pytestmark = pytest.mark.net


class Surprise(RuntimeError):
    """An exception no code path expects."""


def tracebacks(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "piphone.voice.signaling"
            and r.levelno == logging.ERROR and r.exc_info is not None
            and isinstance(r.exc_info[1], Surprise)]


async def test_a_surprise_while_connecting_is_reported_and_retried(make_phone, monkeypatch,
                                                                   caplog):
    real = signaling.connect
    attempts: list[str] = []

    def flaky(url, **kwargs):
        attempts.append(url)
        if len(attempts) <= 2:
            raise Surprise("injected while connecting")
        return real(url, **kwargs)

    monkeypatch.setattr(signaling, "connect", flaky)
    alice = await make_phone("alice", register=False)
    events = Events(alice.device, DEVICE_EVENTS)
    await alice.device.register(timeout=10)  # the third attempt gets through
    errors = events.all("error")
    assert [(e.code, type(e.original_error)) for e, _ in errors] == [(53000, Surprise)] * 2
    assert "Surprise: injected while connecting" in errors[0][0].message
    assert len(tracebacks(caplog)) == 1  # the same surprise twice: its traceback once
    assert len(attempts) == 3


async def test_a_surprise_while_reading_reconnects_and_registers_again(make_phone, monkeypatch,
                                                                       caplog):
    alice = await make_phone("alice", register_interval=0.3)
    events = Events(alice.device, DEVICE_EVENTS)
    armed = True

    class Flaky:  # the protocol module as signaling.py sees it, with a decoder that breaks
        def __getattr__(self, name):
            return getattr(protocol, name)

        def decode(self, text, kinds):
            nonlocal armed
            if armed and '"ready"' in text:
                armed = False
                raise Surprise("injected while reading")
            return protocol.decode(text, kinds)

    monkeypatch.setattr(signaling, "protocol", Flaky())
    (error, _) = await events.wait("error", timeout=5)  # at the next re-register's "ready"
    assert error.code == 31005 and isinstance(error.original_error, Surprise)
    await events.wait("registered", timeout=10)  # the stream came back and registered again
    assert events.names().index("unregistered") < events.names().index("registered")
    assert len(tracebacks(caplog)) == 1


async def test_a_surprise_while_writing_reconnects_and_registers_again(make_phone, caplog):
    alice = await make_phone("alice")
    events = Events(alice.device, DEVICE_EVENTS)
    stream = alice.device._stream
    ws = stream._ws

    async def broken_send(message):
        raise Surprise("injected while writing")

    ws.send = broken_send
    stream.send("register", {"media": {"audio": True}})
    (error, _) = await events.wait("error", timeout=5)
    assert error.code == 31005 and isinstance(error.original_error, Surprise)
    await events.wait("registered", timeout=10)
    assert stream._ws is not ws  # a fresh socket
    assert len(tracebacks(caplog)) == 1


async def test_fallback_moves_on_after_a_failed_attempt_and_retries_an_open_url_first(
        monkeypatch):
    """The SDK's WSTransport: a failed attempt moves to the next URL (wrapping around); a
    stream that was open and broke is tried on the same URL first."""
    from websockets.asyncio.server import serve

    opened: list = []

    async def hold(ws) -> None:
        opened.append(ws)
        await ws.wait_closed()

    server = await serve(hold, "127.0.0.1", 0)
    live = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/signal"
    dead = "ws://127.0.0.1:9/signal"  # discard: nothing listens there
    tried: list[str] = []
    real = signaling.connect

    def recording(url, **kwargs):
        tried.append(url)
        return real(url, **kwargs)

    monkeypatch.setattr(signaling, "connect", recording)
    stream = signaling.Signaling([dead, live], lambda: "token",
                                 backoff=signaling.Backoff(first=0.05, cap=0.1))
    events = Events(stream, ("open", "close", "error"))
    try:
        stream.start()
        await events.wait("open")
        assert tried == [dead, live] and stream.url == live
        await opened[0].close()  # the open stream breaks: the same URL first
        await events.wait("open", 2)
        assert tried == [dead, live, live]
        server.close()  # now live fails too: on to the next URL, wrapping around to dead
        await server.wait_closed()
        await events.wait("close", 2)
        await until(lambda: len(tried) >= 5, timeout=5, what="two more attempts")
        assert tried[3:5] == [live, dead]
        assert events.all("error") == []  # a network that is away: only logged
    finally:
        await stream.close()
