"""The command line as a user drives it, and the exchange over wss:// (browsers need TLS)."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys

import pytest

from piphone import cli
from piphone.exchange import auth
from piphone.exchange import config as exchange_config
from piphone.exchange.server import Exchange
from piphone.voice import Device
from piphone.voice.tokens import mint
from piphone.voice.tracks import Recorder, ToneTrack, dominant_frequency

from ..conftest import LOOPBACK
from ..tlscert import self_signed

pytestmark = pytest.mark.net


def test_init_config_then_token(tmp_path, capsys):
    path = tmp_path / "exchange.toml"
    assert cli.main(["exchange", "--init-config", str(path)]) == 0
    assert cli.main(["exchange", "--init-config", str(path)]) == 2  # never overwrites
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["token", "--config", str(path), "--identity", "alice", "--ttl", "90"]) == 0
    token = capsys.readouterr().out.strip()
    grant = auth.verify(token, exchange_config.load(path))
    assert grant.identity == "alice" and 80 < grant.ttl() <= 90


def test_a_broken_config_refuses_to_serve_and_names_the_line(tmp_path, capsys):
    path = exchange_config.write_starter(tmp_path / "exchange.toml")
    path.write_text(path.read_text().replace("max_calls = 12", "max_calls = \"many\""))
    assert cli.main(["exchange", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "line 9: exchange.max_calls: must be int" in err


async def test_demo_calls_the_echo_line_and_hears_itself():
    lines: list[str] = []
    assert await cli.run_demo(2.5, out=lines.append) == 0
    text = "\n".join(lines)
    events = [line.split()[1] for line in lines[1:]]
    assert events[:3] == ["calling", "ringing", "accept"], text
    assert "hearing 440 Hz" in text and events[-1] == "disconnect", text


async def test_exchange_and_call_commands_as_processes(tmp_path, capsys):
    """`piphone exchange` and `piphone call` as a user runs them; digits typed on stdin."""
    config = exchange_config.write_starter(tmp_path / "exchange.toml")
    text = config.read_text().replace("port = 8089", "port = 0")
    config.write_text(text.replace("# ice_addresses", "ice_addresses = [\"127.0.0.1\"]\n#"))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "piphone", "-q", "exchange", "--config", str(config),
        stdout=subprocess.PIPE, env=env)
    try:
        banner = (await asyncio.wait_for(server.stdout.readline(), 15)).decode()
        url = banner.split()[-1]
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/signal"), banner
        token = mint(identity="cli", **exchange_config.load(config).token_kwargs())
        caller = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "piphone", "-q", "call", "echo", "--url", url,
            "--token", token, "--duration", "2.5", "--ice-address", "127.0.0.1",
            "--tone", "600", "--call-log", str(tmp_path / "calls.db"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        caller.stdin.write(b"12#\n")
        await caller.stdin.drain()
        out, _ = await asyncio.wait_for(caller.communicate(), 20)
        output = out.decode()
        assert caller.returncode == 0, output
        for expected in ("ringing", "accept codec=opus", "hearing 600 Hz", "disconnect"):
            assert expected in output, output
        assert "sent digits 12#" in output, output
        # both ends logged the call: `piphone calls` on the phone's and the exchange's log
        capsys.readouterr()
        for db in (tmp_path / "calls.db", tmp_path / "exchange-calls.db"):
            assert cli.main(["calls", "--db", str(db), "--json"]) == 0
            (row,) = json.loads(capsys.readouterr().out)
            assert (row["peer"], row["outcome"], row["codec"]) == ("echo", "completed", "opus")
    finally:
        server.terminate()
        assert await asyncio.wait_for(server.wait(), 10) == 0  # SIGTERM is a clean stop


async def test_wss_exchange_carries_a_call(tmp_path, exchange_cfg):
    cert, key = self_signed(tmp_path)
    server_tls = cli._server_tls(cert, key)
    exchange = Exchange(exchange_cfg)
    await exchange.start(host="127.0.0.1", port=0, ssl_context=server_tls)
    client_tls = ssl.create_default_context(cafile=str(cert))
    recorder = Recorder()
    token = mint(identity="secure", **exchange_cfg.token_kwargs())
    device = Device(token, signaling_url=exchange.url, ice_addresses=LOOPBACK,
                    ssl_context=client_tls, audio_source=lambda: ToneTrack(700),
                    audio_sink=lambda: recorder)
    try:
        assert exchange.url.startswith("wss://127.0.0.1:")
        await device.register()
        call = await device.connect({"To": "echo"})
        opened = asyncio.get_running_loop().create_future()
        call.once("accept", opened.set_result)
        await asyncio.wait_for(opened, 10)
        await asyncio.wait_for(recorder.wait_for_frames(30), 10)
        assert dominant_frequency(recorder.last(0.4), recorder.sample_rate) == pytest.approx(
            700, abs=10)
        # feedback goes over https to the exchange's gateway, trusted like its wss://
        assert device.event_gateway.startswith("https://127.0.0.1:")
        assert await asyncio.wait_for(call.post_feedback(5), 10) is True
        assert exchange.records.log.recent()[0].feedback[0]["score"] == 5
    finally:
        await device.destroy()
        await exchange.close()
    with pytest.raises(cli.PiphoneError, match="go together"):
        cli._server_tls(cert, None)
