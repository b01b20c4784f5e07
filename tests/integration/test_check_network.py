"""`piphone check --network` as a maker runs it: the installed command, a phone's config
(piphone.toml and its 0600 secrets.toml) naming the test exchange, the report it prints;
and the failures (a refused key, an exchange that is not there) as one clear line."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path

import pytest

from .appliance_rig import write_phone_config

pytestmark = pytest.mark.net

PIPHONE = str(Path(sys.executable).parent / "piphone")


async def piphone(*args: str, timeout: float = 40) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        PIPHONE, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_check_network_prints_the_report(tmp_path, exchange):
    config = write_phone_config(tmp_path, exchange)
    code, out, err = await piphone("check", "--network", "--config", str(config),
                                   "--duration", "5")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (f"network check: alice -> {exchange.url}, a test call of 5 s to the "
                        "echo line")
    assert "  connected; measuring..." in lines
    quality = next(line for line in lines if line.startswith("call quality:"))
    assert quality.startswith("call quality: excellent (MOS 4.")  # loopback
    assert any(line.startswith("  round trip: ") and "average" in line for line in lines)
    assert any(line.startswith("  packets: ") and " 0 lost" in line for line in lines)
    setup = next(line for line in lines if line.startswith("  set-up: "))
    assert " -" not in setup  # every step measured
    assert any(line.startswith("  media path: host 127.0.0.1:") and "TURN not required"
               in line for line in lines)
    assert any(line.startswith("  call: CA") for line in lines)
    assert lines[-1].startswith("  warnings: ")
    assert exchange.config.api_key_secret not in out + err


async def test_check_network_json_is_the_sdk_report(tmp_path, exchange):
    # MOS needs a round trip from RTCP (a sender report at 0.5-1.5 s, the echo's receiver
    # report up to 1.5 s later): 5 s leaves room for a loaded machine, 3 s did not.
    config = write_phone_config(tmp_path, exchange, identity="bob")
    code, out, err = await piphone("check", "--network", "--json", "--config", str(config),
                                   "--duration", "5")
    assert code == 0, err
    data = json.loads(out)
    assert data["status"] == "completed"
    report = data["report"]
    assert report["callQuality"] in ("excellent", "great")
    assert set(report["stats"]) == {"jitter", "mos", "rtt"}
    assert set(report["networkTiming"]) == {"signaling", "ice", "dtls", "peerConnection"}
    assert report["callSid"].startswith("CA") and report["samples"]
    assert report["selectedIceCandidatePairStats"]["localCandidate"]["address"] == "127.0.0.1"


async def test_check_network_with_a_refused_key_says_so(tmp_path, exchange):
    config = write_phone_config(tmp_path, exchange)
    (tmp_path / "secrets.toml").write_text('[account]\napi_key_secret = "' + "x" * 40 + '"\n')
    code, out, err = await piphone("check", "--network", "--config", str(config))
    assert code == 1
    assert out.splitlines()[-1].startswith("network check failed: AccessTokenInvalid (20101):")
    assert "x" * 40 not in out + err


async def test_check_network_without_the_exchange_says_so(tmp_path, exchange):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_phone_config(tmp_path, exchange, url=f"ws://127.0.0.1:{port}/signal")
    code, out, _ = await piphone("check", "--network", "--json", "--config", str(config))
    assert code == 1
    data = json.loads(out)
    assert data["status"] == "failed" and data["error"]["code"] == 53000
    assert data["error"]["name"] == "SignalingConnectionError"


async def test_check_network_config_errors_name_the_file(tmp_path):
    code, _, err = await piphone("check", "--network", "--config", str(tmp_path / "none.toml"))
    assert code == 2 and "none.toml" in err
    code, _, err = await piphone("check", "--json")
    assert code == 2 and "--json goes with --network" in err
