"""Two exchanges given one call_log (issue 13): the second refuses to start, naming the file and
the process that holds it, with the config-error status (2); the first serves on."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys

import pytest
from websockets.asyncio.client import connect

from piphone.exchange import config as exchange_config

pytestmark = pytest.mark.net


async def test_a_second_exchange_on_the_same_call_log_exits_2_naming_the_file(tmp_path):
    config = exchange_config.write_starter(tmp_path / "exchange.toml")
    config.write_text(config.read_text().replace("port = 8089", "port = 0"))
    call_log = tmp_path / "exchange-calls.db"  # the starter's call_log, next to the file
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    def start():
        return asyncio.create_subprocess_exec(
            sys.executable, "-m", "piphone", "-q", "exchange", "--config", str(config),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    async def serving(process) -> None:
        """It printed its URL and answers there (so it also handles SIGTERM by now)."""
        banner = (await asyncio.wait_for(process.stdout.readline(), 15)).decode()
        assert "serving" in banner, banner
        # the starter serves wss:// with its own CA (tls_ca), as a phone given that CA sees it
        trust = ssl.create_default_context(cafile=exchange_config.load(config).tls_ca)
        async with connect(banner.split()[-1], open_timeout=5, ssl=trust):
            pass

    first = await start()
    try:
        await serving(first)
        second = await start()
        out, err = await asyncio.wait_for(second.communicate(), 15)
        message = err.decode()
        assert second.returncode == 2, message
        assert "Traceback" not in message, message
        assert str(call_log) in message and "in use" in message, message
        assert f"pid {first.pid}" in message and "piphone" in message, message
        assert first.returncode is None  # the first one serves on
    finally:
        first.terminate()
        assert await asyncio.wait_for(first.wait(), 10) == 0
    # once the first has stopped, the call log is free again
    again = await start()
    try:
        await serving(again)
    finally:
        again.terminate()
        assert await asyncio.wait_for(again.wait(), 10) == 0
