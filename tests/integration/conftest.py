"""Fixtures the integration tests share (the exchange and its config are tests/conftest.py's)."""

from __future__ import annotations

import pytest

from .hostile import hostile_clients
from .leaks import LeakCheck


@pytest.fixture
async def leaks() -> LeakCheck:
    """Requested first, in the test's loop: it counts the sockets open before the test."""
    return LeakCheck()


@pytest.fixture
async def hostile(exchange):
    """Opens raw signaling clients that say what a test makes them say (hostile.Hostile)."""
    async with hostile_clients(exchange) as open_:
        yield open_
