"""aioice's connect() racing close(): a connection closed while it connects must not start
consent checks that run for ever (voice/rtc/hooks.py)."""

from __future__ import annotations

import asyncio

import aioice.ice
import pytest

from piphone.voice.rtc import hooks as rtc_hooks


def test_the_hook_is_installed():
    rtc_hooks.check()
    assert aioice.ice.Connection.connect is rtc_hooks._connect_unless_closed


async def test_a_connection_closed_while_it_connects_fails_and_checks_no_consent(monkeypatch):
    connection = aioice.ice.Connection(ice_controlling=True)
    forever = asyncio.Event()

    async def completes_after_close(self):
        # what aioice does when close() comes during connect()'s last 20 ms sleep: the check
        # list had completed, so connect() returns and starts consent checks
        await self.close()
        self._query_consent_task = asyncio.create_task(forever.wait())

    monkeypatch.setattr(rtc_hooks, "_original_connect", completes_after_close)
    with pytest.raises(ConnectionError, match="closed while connecting"):
        await connection.connect()
    assert connection._query_consent_task is None
    await asyncio.sleep(0)
    assert all(t.done() for t in asyncio.all_tasks() if t is not asyncio.current_task())


async def test_an_open_connection_keeps_its_consent_checks(monkeypatch):
    connection = aioice.ice.Connection(ice_controlling=True)
    forever = asyncio.Event()

    async def completes(self):
        self._query_consent_task = asyncio.create_task(forever.wait())

    monkeypatch.setattr(rtc_hooks, "_original_connect", completes)
    await connection.connect()
    task = connection._query_consent_task
    assert task is not None and not task.done()
    task.cancel()
