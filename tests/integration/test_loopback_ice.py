"""ICE on a machine with only loopback (issue 13): aioice leaves loopback out of its
candidates, so an exchange bound to 127.0.0.1 (the README's example) offered nothing and calls
failed with "media connection failed". Now a peer reached over loopback is offered 127.0.0.1,
and a side with no candidate at all says so in its error."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys

import pytest

from piphone.exchange import config as exchange_config
from piphone.pcm import Recorder, Tone, dominant_frequency
from piphone.voice import Device, TwilioError
from piphone.voice.tokens import mint

from .helpers import Events

pytestmark = pytest.mark.net

NOT_HERE = "192.0.2.1"  # TEST-NET-1: an address this machine does not have


async def test_the_readme_exchange_on_127_0_0_1_carries_a_call_with_no_ice_addresses(tmp_path):
    """`piphone exchange` with its starter config (host 127.0.0.1, no ice_addresses) and a
    Device with no ice_addresses, in a namespace whose only interface is loopback."""
    config = exchange_config.write_starter(tmp_path / "exchange.toml")
    text = config.read_text()
    assert 'host = "127.0.0.1"' in text and "\n# ice_addresses" in text
    config.write_text(text.replace("port = 8089", "port = 0"))
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "piphone", "-q", "exchange", "--config", str(config),
        stdout=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    recorder = Recorder()
    device = None
    try:
        banner = (await asyncio.wait_for(server.stdout.readline(), 15)).decode()
        url = banner.split()[-1]
        cfg = exchange_config.load(config)
        token = mint(identity="alice", ttl=600, **cfg.token_kwargs())
        # wss:// with the starter's own CA, as a phone given that CA (ca_file) trusts it
        device = Device(token, signaling_url=url, audio_source=lambda: Tone(520),
                        ssl_context=ssl.create_default_context(cafile=cfg.tls_ca),
                        audio_sink=lambda: recorder)
        await device.register()
        call = await device.connect({"To": "echo"})
        events = Events(call)
        await events.wait("accept", timeout=10)
        await asyncio.wait_for(recorder.wait_for_frames(30), 10)
        assert dominant_frequency(recorder.last(0.4), 48_000) == pytest.approx(520, abs=10)
        call.disconnect()
    finally:
        if device is not None:
            await asyncio.wait_for(device.destroy(), 10)
        server.terminate()
        assert await asyncio.wait_for(server.wait(), 10) == 0


async def test_a_client_with_no_usable_address_is_told_there_is_no_ice_candidate(make_phone):
    alice = await make_phone("alice", ice_addresses=(NOT_HERE,))
    with pytest.raises(TwilioError) as info:
        await alice.device.connect({"To": "echo"})
    assert "no ICE candidate" in info.value.message, info.value.message
    assert NOT_HERE in info.value.message


@pytest.mark.parametrize("exchange_cfg", [{"ice_addresses": (NOT_HERE,)}], indirect=True)
async def test_an_exchange_with_no_usable_address_says_so_to_the_caller(make_phone, caplog):
    alice = await make_phone("alice")
    call = await alice.device.connect({"To": "echo"})
    events = Events(call)
    (error,) = await events.wait("error", timeout=5)
    assert error.code == 53405
    assert "exchange has no ICE candidate" in error.message, error.message
    await events.wait("disconnect", timeout=5)
    assert any("no ICE candidate" in r.getMessage() and r.name.startswith("piphone.voice")
               for r in caplog.records), "the exchange logs why"
