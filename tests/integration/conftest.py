"""Fixtures of the integration suite: per-test exchange settings and a tap on the exchange's wire.

Change the exchange's settings for one test with indirect parametrization:
``@pytest.mark.parametrize("exchange_cfg", [{"max_calls": 1}], indirect=True)``.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from piphone.exchange.server import ClientSession
from piphone.voice import protocol


@pytest.fixture
def exchange_cfg(exchange_cfg, request):
    overrides = getattr(request, "param", None) or {}
    return replace(exchange_cfg, **overrides)


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
