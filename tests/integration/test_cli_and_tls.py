"""The command line as a user drives it, and the exchange over wss:// (browsers need TLS)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from cryptography import x509

from piphone import cli, cli_exchange
from piphone.errors import ConfigError
from piphone.exchange import auth, tls
from piphone.exchange import config as exchange_config
from piphone.exchange.server import Exchange
from piphone.pcm import Recorder, Tone, dominant_frequency
from piphone.voice import Device
from piphone.voice.tokens import mint

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
    from piphone.cli.run import run_demo

    assert await run_demo(2.5, out=lines.append) == 0
    text = "\n".join(lines)
    events = [line.split()[1] for line in lines[1:]]
    assert events[:3] == ["calling", "ringing", "accept"], text
    assert "hearing 440 Hz" in text and events[-1] == "disconnect", text


ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = str(Path(sys.executable).parent)


def readme_example() -> list[str]:
    """The shell lines of the README's "Two phones through the local exchange", as written."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Two phones through the local exchange"):]
    start = section.index("```sh\n") + len("```sh\n")
    block = section[start:section.index("```", start)]
    return [line for line in block.splitlines() if line.strip()]


def as_run_here(line: str) -> str:
    return line.replace(".venv/bin/", f"{VENV_BIN}/")


@pytest.fixture
def lan_host():
    """argv -> argv run in a network namespace of its own that looks like a machine on a
    LAN: loopback, and an interface with an address (10.99.0.1, a veth pair), which the
    exchange offers to ICE as it offers a real machine's (aioice leaves loopback out). The
    suite's own namespace is left as it is."""
    holder = subprocess.Popen(["unshare", "-n", "sleep", "600"])
    enter = ["nsenter", "-t", str(holder.pid), "-n"]
    try:
        for _ in range(100):  # until unshare has made the namespace
            if os.readlink(f"/proc/{holder.pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.01)
        subprocess.run([*enter, "sh", "-c", "ip link set lo up && ip link add v0 type veth "
                        "peer name v1 && ip addr add 10.99.0.1/24 dev v0 && ip link set v0 up "
                        "&& ip link set v1 up"], check=True, timeout=10)
        yield lambda argv: [*enter, *argv]
    finally:
        holder.kill()
        holder.wait()


async def read_until(stream, needle: str, timeout: float, seen: list[str]) -> None:
    async def scan() -> None:
        while needle not in "".join(seen):
            line = await stream.readline()
            if not line:
                raise AssertionError(f"ended before {needle!r}: {''.join(seen)}")
            seen.append(line.decode())

    await asyncio.wait_for(scan(), timeout)


async def test_the_readme_example_as_written(tmp_path, capsys, lan_host):
    """The README's commands, run as a user runs them (in the suite's loopback-only namespace):
    an exchange on wss:// with its own CA, a token in a file, a call to the echo line with
    digits typed and Ctrl-C to hang up, and a second phone's files from add-phone."""
    init, serve, token, call, add_phone = readme_example()
    assert serve.endswith(" &") and "wss://" in call and "--token-file" in call
    # Trust comes from --ca-file alone, not from anything the environment names.
    env = dict(os.environ, PYTHONUNBUFFERED="1", SSL_CERT_FILE=str(tmp_path / "none.pem"),
               SSL_CERT_DIR=str(tmp_path / "none"), REQUESTS_CA_BUNDLE="")

    def run(line: str) -> subprocess.CompletedProcess:
        return subprocess.run(lan_host(["bash", "-c", as_run_here(line)]), cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60)

    done = run(init)
    assert done.returncode == 0, done.stderr
    for name, mode in (("exchange.toml", 0o600), ("exchange-ca.key", 0o600),
                       ("exchange-cert.key", 0o600), ("exchange-ca.pem", 0o644)):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
    server = await asyncio.create_subprocess_exec(
        *lan_host(["bash", "-c", "exec " + as_run_here(serve.removesuffix("&").strip())]),
        cwd=tmp_path, stdout=subprocess.PIPE, env=env)
    try:
        banner: list[str] = []
        await read_until(server.stdout, "serving", 15, banner)
        assert "piphone exchange serving wss://0.0.0.0:8089/signal" in banner[-1], banner
        done = run(token)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "alice.jwt").stat().st_mode & 0o777 == 0o600
        secret = (tmp_path / "alice.jwt").read_text().strip()
        caller = await asyncio.create_subprocess_exec(
            *lan_host(["bash", "-c", "exec " + as_run_here(call)]), cwd=tmp_path, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seen: list[str] = []
        await read_until(caller.stdout, "accept codec=opus", 20, seen)
        # What `ps` shows every user of the machine: no token.
        cmdline = Path(f"/proc/{caller.pid}/cmdline").read_bytes()
        assert secret.encode() not in cmdline and b"--token-file\0alice.jwt" in cmdline
        caller.stdin.write(b"12#\n")  # digits typed, then Enter
        await caller.stdin.drain()
        await read_until(caller.stdout, "hearing 440 Hz", 10, seen)
        await read_until(caller.stdout, "sent digits 12#", 10, seen)
        caller.send_signal(signal.SIGINT)  # Ctrl-C hangs up
        out, err = await asyncio.wait_for(caller.communicate(), 20)
        output = "".join(seen) + out.decode()
        assert caller.returncode == 0, output + err.decode()
        assert "disconnect" in output and "warning" not in err.decode(), output + err.decode()
        # The exchange logged the call beside its config.
        capsys.readouterr()
        assert cli.main(["calls", "--db", str(tmp_path / "exchange-calls.db"), "--json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)
        assert (row["peer"], row["outcome"], row["codec"]) == ("echo", "completed", "opus")
        # The second phone: its account, its key's secret (0600) and the CA.
        done = run(add_phone)
        assert done.returncode == 0, done.stderr
        bob = tmp_path / "bob"
        account = tomllib.loads((bob / "piphone.toml").read_text())["account"]
        secrets = tomllib.loads((bob / "secrets.toml").read_text())["account"]
        assert (bob / "secrets.toml").stat().st_mode & 0o777 == 0o600
        assert account["identity"] == "bob" and account["signaling_url"].startswith("wss://")
        assert (bob / account["ca_file"]).read_text() == (tmp_path / "exchange-ca.pem").read_text()
        assert "api_key_secret" not in (bob / "piphone.toml").read_text()
        # bob's phone mints with its key and registers over wss://, trusting that CA only.
        token = mint(identity="bob", account_sid=account["account_sid"],
                     api_key_sid=account["api_key_sid"], api_key_secret=secrets["api_key_secret"])
        (tmp_path / "bob.jwt").write_text(token)
        (tmp_path / "bob.jwt").chmod(0o600)
        bob_call = run(".venv/bin/piphone call echo --url wss://127.0.0.1:8089/signal "
                       f"--ca-file bob/{account['ca_file']} --token-file bob.jwt --duration 1.5 "
                       "--ice-address 127.0.0.1")
        assert bob_call.returncode == 0 and "accept" in bob_call.stdout, bob_call.stdout
    finally:
        server.terminate()
        assert await asyncio.wait_for(server.wait(), 10) == 0  # SIGTERM is a clean stop


def plaintext_config(tmp_path) -> Path:
    """A starter config without its TLS lines (an exchange set up before there was TLS)."""
    config = exchange_config.write_starter(tmp_path / "exchange.toml")
    text = "".join(line for line in config.read_text().splitlines(keepends=True)
                   if not line.startswith(("tls_cert", "tls_key", "tls_ca")))
    config.write_text(text.replace("port = 8089", "port = 0"))
    return config


def test_ws_beyond_loopback_is_refused_unless_allowed(tmp_path, capsys):
    config = plaintext_config(tmp_path)
    for host in ("0.0.0.0", "192.0.2.7", "::", "phone.local"):
        assert cli.main(["exchange", "--config", str(config), "--host", host]) == 2
        err = capsys.readouterr().err
        assert f"refusing to serve ws:// on {host}" in err and "--allow-plaintext" in err


async def test_ws_on_loopback_and_plaintext_when_allowed_are_served(tmp_path):
    config = plaintext_config(tmp_path)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for extra in (["--host", "127.0.0.1"], ["--host", "0.0.0.0", "--allow-plaintext"]):
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "piphone", "-q", "exchange", "--config", str(config), *extra,
            stdout=subprocess.PIPE, env=env)
        try:
            banner: list[str] = []
            await read_until(server.stdout, "serving", 15, banner)
            assert f"serving ws://{extra[1]}:" in banner[-1]
        finally:
            server.terminate()
            assert await asyncio.wait_for(server.wait(), 10) == 0


def test_init_tls_gives_an_old_config_a_certificate(tmp_path, capsys):
    config = plaintext_config(tmp_path)
    assert cli.main(["exchange", "--init-tls", "--config", str(config), "--name",
                     "exchange.example", "--address", "192.0.2.7"]) == 0
    assert "192.0.2.7" in capsys.readouterr().out
    cfg = exchange_config.load(config)
    assert cfg.tls_cert == str(tmp_path / "exchange-cert.pem") and cfg.tls_ca is not None
    assert config.stat().st_mode & 0o777 == 0o600
    certificate = x509.load_pem_x509_certificate(Path(cfg.tls_cert).read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "exchange.example" in names.get_values_for_type(x509.DNSName)
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("192.0.2.7") in names.get_values_for_type(x509.IPAddress)
    # Again (a renewal): the same CA, a new certificate; the config is not edited twice.
    ca = Path(cfg.tls_ca).read_bytes()
    assert cli.main(["exchange", "--init-tls", "--config", str(config)]) == 0
    assert Path(cfg.tls_ca).read_bytes() == ca and config.read_text().count("tls_cert") == 1


async def test_wss_exchange_carries_a_call(tmp_path, exchange_cfg):
    cert, key = self_signed(tmp_path)
    server_tls = tls.server_context(cert, key)
    exchange = Exchange(exchange_cfg)
    await exchange.start(host="127.0.0.1", port=0, ssl_context=server_tls)
    client_tls = ssl.create_default_context(cafile=str(cert))
    recorder = Recorder()
    token = mint(identity="secure", **exchange_cfg.token_kwargs())
    device = Device(token, signaling_url=exchange.url, ice_addresses=LOOPBACK,
                    ssl_context=client_tls, audio_source=lambda: Tone(700),
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
        cli_exchange.server_tls(exchange_cfg, cert, None)
    key.chmod(0o644)  # a private key others may read is refused like any secret
    with pytest.raises(ConfigError, match="lets others read"):
        tls.server_context(cert, key)
