"""The default configuration, as written: Twilio's edge over verified TLS (issue 13).

A stand-in for Twilio's edge under its real name: the exchange serves wss:// on 127.0.0.1:443
with a certificate for ``voice-js.roaming.twilio.com`` from a test CA. The client is a child
process (``edge_client.py``, or ``piphone`` itself) in its own mount namespace whose
/etc/hosts sends Twilio's names to 127.0.0.1 (hostsns.with_hosts), and whose trust store is
the test CA alone (``SSL_CERT_FILE``, an empty ``SSL_CERT_DIR``): nothing in the product is
told it is a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from piphone.exchange.server import Exchange
from piphone.exchange.tls import server_context
from piphone.voice.tokens import mint

from ..conftest import until
from ..hostsns import TWILIO_EDGE, with_hosts
from ..tlscert import TestCA, self_signed
from .helpers import Events
from .test_appliance_service import FakeSystemd, environment, stop

pytestmark = pytest.mark.net

ROOT = Path(__file__).resolve().parents[2]
EDGE_PORT = 443
DAY = datetime.timedelta(days=1)


@pytest.fixture
def ca(tmp_path) -> TestCA:
    return TestCA.create(tmp_path / "ca")


@pytest.fixture
def edge_cfg(exchange_cfg):
    # A signaling cut mid-call must be survivable: Twilio keeps a leg far longer than 0.5 s.
    return replace(exchange_cfg, reconnect_grace=10.0)


@contextlib.asynccontextmanager
async def edge(cfg, cert: Path, key: Path, port: int = EDGE_PORT) -> AsyncIterator[Exchange]:
    """The exchange as Twilio's edge: wss:// on 127.0.0.1:``port`` with ``cert``."""
    exchange = Exchange(cfg)
    await exchange.start(host="127.0.0.1", port=port, ssl_context=server_context(cert, key))
    try:
        yield exchange
    finally:
        await exchange.close()


def trusting(folder: Path, ca_file: Path | None, base: dict[str, str] | None = None,
             **extra: str) -> dict[str, str]:
    """The environment ``base`` (default ours) of a child that trusts ``ca_file`` and nothing
    else (or nothing)."""
    empty = folder / "no-certs"
    empty.mkdir(exist_ok=True)
    bundle = ca_file or (folder / "empty.pem")
    if ca_file is None:
        bundle.write_text("")
    env = dict(os.environ if base is None else base, SSL_CERT_FILE=str(bundle),
               SSL_CERT_DIR=str(empty), REQUESTS_CA_BUNDLE=str(bundle), PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(ROOT / "firmware"), str(ROOT)]), **extra)
    env.pop("CURL_CA_BUNDLE", None)  # requests reads it too (this machine sets it)
    return env


class Child:
    """A child process printing JSON lines on stdout; its stderr (the log) is kept."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict] = []
        self.log: list[str] = []
        self._stderr = asyncio.ensure_future(self._read_stderr())

    async def _read_stderr(self) -> None:
        while line := await self.proc.stderr.readline():
            self.log.append(line.decode(errors="replace").rstrip())

    async def next(self, event: str, timeout: float = 20.0) -> dict:
        """The next line of ``event`` (the lines before it are kept in ``lines``)."""
        async def read() -> dict:
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise AssertionError(f"the client ended before {event!r}; "
                                         f"got {self.lines}\n" + "\n".join(self.log))
                line = json.loads(raw)
                self.lines.append(line)
                if line["event"] == event:
                    return line

        try:
            return await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {event!r} within {timeout} s; got {self.lines}\n"
                                 + "\n".join(self.log)) from None

    def events(self, name: str) -> list[dict]:
        return [line for line in self.lines if line["event"] == name]

    async def close(self) -> int:
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        await self._stderr
        return self.proc.returncode


async def edge_client(folder: Path, ca_file: Path | None, token: str, mode: str,
                      *edges: str, names: tuple[str, ...] = (TWILIO_EDGE,)) -> Child:
    argv = with_hosts(folder, names, [sys.executable, "-m", "tests.integration.edge_client",
                                      mode, *edges])
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, env=trusting(folder, ca_file, PIPHONE_TOKEN=token),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    return Child(proc)


def token_for(cfg, identity: str = "maker") -> str:
    return mint(identity=identity, ttl=600, **cfg.token_kwargs())


# --- (a) Device(token) registers, calls and reconnects through Twilio's edge ---------------------
async def test_device_with_no_url_registers_calls_and_reconnects_over_verified_tls(
        tmp_path, ca, edge_cfg):
    cert, key = ca.issue(tmp_path / "edge", [TWILIO_EDGE])
    async with edge(edge_cfg, cert, key) as exchange:
        client = await edge_client(tmp_path, ca.cert, token_for(edge_cfg), "call")
        registered = await client.next("registered")
        assert registered["url"] == f"wss://{TWILIO_EDGE}/signal"
        assert (registered["edge"], registered["home"]) == ("local", "local")  # as named
        await client.next("accept")
        heard = await client.next("heard")
        assert heard["hz"] == pytest.approx(620, abs=15), client.log
        # Insights feedback over https, trusted as signaling is (the same context)
        feedback = await client.next("feedback")
        assert feedback["posted"] is True, client.log
        assert feedback["gateway"].startswith(f"https://{TWILIO_EDGE}:")
        # drop the socket as the network would (no close frame): the call resumes
        (session,) = [s for s in exchange.sessions if s.identity == "maker"]
        session.ws.transport.abort()
        client.proc.stdin.write(b"drop\n")
        await client.proc.stdin.drain()
        await client.next("reconnecting")
        await client.next("reconnected")
        after = await client.next("after-reconnect")
        assert after["url"] == f"wss://{TWILIO_EDGE}/signal"
        await client.next("done")
        assert await client.close() == 0
        assert client.events("error") == [], client.lines
        assert any("certificate" in line for line in client.log) is False


# --- (b) the appliance configured the Twilio way ------------------------------------------------
def twilio_way(folder: Path, cfg) -> Path:
    """piphone.toml as the README's Twilio section has it: account SID and API key (its
    secret in secrets.toml), no signaling_url. (Loopback ICE and no headset: the test rig.)"""
    path = folder / "piphone.toml"
    path.write_text(f"""\
[account]
identity = "alice"
account_sid = "{cfg.account_sid}"
api_key_sid = "{cfg.api_key_sid}"
ice_addresses = ["127.0.0.1"]

[audio]
headset = "none"

[phone]
call_log = ""
auto_answer_rings = 1

[alerts]
ring_pattern = [0.1, 0.1]
""")
    secrets = folder / "secrets.toml"
    secrets.write_text(f'[account]\napi_key_secret = "{cfg.api_key_secret}"\n')
    secrets.chmod(0o600)
    return path


async def test_the_appliance_configured_the_twilio_way_registers_and_answers(tmp_path, ca,
                                                                             edge_cfg):
    from piphone.voice import Device, tls

    cert, key = ca.issue(tmp_path / "edge", [TWILIO_EDGE, "127.0.0.1"])
    systemd = FakeSystemd(tmp_path / "notify")
    config = twilio_way(tmp_path, edge_cfg)
    env = trusting(tmp_path, ca.cert, environment(systemd, WATCHDOG_USEC="0"))
    argv = with_hosts(tmp_path, [TWILIO_EDGE],
                      [sys.executable, "-m", "piphone", "run", "--config", str(config)])
    async with edge(edge_cfg, cert, key) as exchange:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        # bob calls from this process, to the same edge by its address
        bob = Device(token_for(edge_cfg, "bob"), signaling_url=f"wss://127.0.0.1:{EDGE_PORT}"
                     "/signal", ssl_context=tls.client_context(ca_file=ca.cert),
                     ice_addresses=("127.0.0.1",))
        try:
            await until(lambda: systemd.got("READY=1") or proc.returncode is not None,
                        timeout=30, what="READY=1")
            assert proc.returncode is None
            assert "registered as alice" in systemd.statuses()
            (session,) = [s for s in exchange.sessions if s.identity == "alice"]
            assert session.registered
            call = await bob.connect({"To": "client:alice"})
            accepted = asyncio.Event()
            call.once("accept", lambda _call: accepted.set())
            await asyncio.wait_for(accepted.wait(), 15)  # the phone answered (auto-answer)
            await until(lambda: any(s.startswith("talking to") for s in systemd.statuses()),
                        timeout=10, what="STATUS talking")
        finally:
            await bob.destroy()
            code, err = await stop(proc)
            systemd.close()
    assert code == 0, err
    assert "certificate" not in err and "Traceback" not in err, err


# --- (c) refusals name the certificate's problem -------------------------------------------------
def _foreign(ca: TestCA, folder: Path):
    return TestCA.create(folder / "other-ca", "someone else's CA").issue(folder, [TWILIO_EDGE])


REFUSALS = {
    "unknown CA": lambda ca, folder: _foreign(ca, folder),
    "wrong host name": lambda ca, folder: ca.issue(folder, ["voice-js.example.org"]),
    "expired": lambda ca, folder: ca.issue(
        folder, [TWILIO_EDGE], not_before=datetime.datetime.now(datetime.UTC) - 10 * DAY,
        not_after=datetime.datetime.now(datetime.UTC) - DAY),
    "not yet valid": lambda ca, folder: ca.issue(
        folder, [TWILIO_EDGE], not_before=datetime.datetime.now(datetime.UTC) + DAY,
        not_after=datetime.datetime.now(datetime.UTC) + 10 * DAY),
}


@pytest.mark.parametrize("reason", list(REFUSALS))
async def test_a_bad_edge_certificate_is_refused_with_its_reason(tmp_path, ca, edge_cfg,
                                                                  reason):
    cert, key = REFUSALS[reason](ca, tmp_path / "edge")
    async with edge(edge_cfg, cert, key) as exchange:
        client = await edge_client(tmp_path, ca.cert, token_for(edge_cfg), "refused")
        error = await client.next("error")
        await client.next("done")
        assert await client.close() == 0
        assert not exchange.sessions  # no WebSocket was ever opened
    assert error["code"] == 53000 and error["cause"] == "SSLCertVerificationError"
    assert f"certificate of {TWILIO_EDGE} refused: {reason} (" in error["message"], error
    logged = [line for line in client.log if "refused: " + reason in line]
    assert len(logged) == 1, client.log  # the log says it once, in the same words
    assert logged[0].startswith("WARNING piphone.voice.signaling: signaling: certificate of")
    assert "Traceback" not in "\n".join(client.log)


# --- (f) edge fallback ---------------------------------------------------------------------------
async def test_edge_list_falls_back_to_the_next_edge(tmp_path, ca, edge_cfg):
    """ashburn's name resolves nowhere (not in hosts, no DNS in this network); roaming
    answers. The SDK moves to the next edge after a failed attempt."""
    cert, key = ca.issue(tmp_path / "edge", [TWILIO_EDGE])
    async with edge(edge_cfg, cert, key):
        client = await edge_client(tmp_path, ca.cert, token_for(edge_cfg), "register",
                                   "ashburn", "roaming")
        registered = await client.next("registered", timeout=25)
        await client.next("done")
        assert await client.close() == 0
    assert registered["url"] == f"wss://{TWILIO_EDGE}/signal"
    assert client.events("error") == []  # a network that is away is no error event
    log = "\n".join(client.log)
    assert ("WARNING piphone.voice.signaling: signaling: cannot reach "
            "wss://voice-js.ashburn.twilio.com/signal") in log, log
    assert "signaling falls back to wss://voice-js.roaming.twilio.com/signal" in log, log
    assert "connected to wss://voice-js.roaming.twilio.com/signal (after 1 failed" in log


# --- (e) a clock before the release is "clock not set", and waited for ---------------------------
async def test_a_clock_before_the_release_is_reported_as_not_set(tmp_path, ca, edge_cfg,
                                                                 monkeypatch):
    from piphone.voice import Device, tls

    cert, key = ca.issue(tmp_path / "edge", ["127.0.0.1"])
    stopped = datetime.datetime(2020, 1, 2, 3, 4, tzinfo=datetime.UTC)  # a Pi before NTP
    monkeypatch.setattr(tls, "wall_clock", lambda: stopped)
    async with edge(edge_cfg, cert, key, port=0) as exchange:
        device = Device(token_for(edge_cfg), signaling_url=exchange.url,
                        ssl_context=tls.client_context(ca_file=ca.cert),
                        ice_addresses=("127.0.0.1",))
        events = Events(device, ("error", "registered"))
        try:
            registering = asyncio.ensure_future(device.register(timeout=15))
            (first, _) = await events.wait("error")
            assert first.code == 53000
            assert first.message == "clock not set (it says 2020-01-02; waiting for NTP)"
            await events.wait("error", 2)  # retried, and still waiting
            assert not exchange.sessions  # not one certificate was judged meanwhile
            monkeypatch.setattr(tls, "wall_clock",  # NTP sets the clock
                                lambda: datetime.datetime.now(datetime.UTC))
            await asyncio.wait_for(registering, 10)
            assert all(e.message.startswith("clock not set") for e, _ in events.all("error"))
        finally:
            await device.destroy()


# --- (d) piphone call --url wss://... --ca-file --------------------------------------------------
async def test_call_command_trusts_its_ca_file_and_nothing_else(tmp_path, ca, edge_cfg):
    cert, key = ca.issue(tmp_path / "edge", ["127.0.0.1"])
    async with edge(edge_cfg, cert, key, port=0) as exchange:
        token = token_for(edge_cfg)
        argv = [sys.executable, "-m", "piphone", "call", "echo", "--url", exchange.url,
                "--token", token, "--duration", "2.5", "--headset", "none", "--tone", "600",
                "--ice-address", "127.0.0.1"]
        env = trusting(tmp_path, None)  # the machine's own store does not know the CA

        async def run(*extra: str) -> tuple[int, str]:
            proc = await asyncio.create_subprocess_exec(
                *argv, *extra, cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
            return proc.returncode, out.decode()

        code, out = await run()
        assert code == 1 and "unknown CA" in out, out
        code, out = await run("--ca-file", str(ca.cert))
        assert code == 0, out
        assert "accept codec=opus" in out and "hearing 600 Hz" in out, out
        assert "insecure" not in out.lower()
        code, out = await run("--ca-file", str(tmp_path / "missing.pem"))
        assert code == 2 and "missing.pem: no such file" in out, out
        code, out = await run("--ca-file", str(ca.cert), "--insecure")
        assert code == 2 and "does not go with --ca-file" in out, out


async def test_register_names_the_refusal_when_it_gives_up(tmp_path, edge_cfg, caplog):
    """register() on an edge whose certificate is refused ends with 53000 and the reason,
    not only 'no signaling connection'; the log says it once, however often it retried."""
    from piphone.voice import Device, TwilioError

    cert, key = self_signed(tmp_path)
    async with edge(edge_cfg, cert, key, port=0) as exchange:
        url = exchange.url
        device = Device(token_for(edge_cfg), signaling_url=url, ice_addresses=("127.0.0.1",))
        try:
            with pytest.raises(TwilioError) as info:
                await device.register(timeout=2)
        finally:
            await device.destroy()
    assert info.value.code == 53000
    assert info.value.message.startswith(f"no signaling connection to {url} within 2 s: "
                                         "certificate of 127.0.0.1 refused: unknown CA")
    attempts = [r for r in caplog.records if r.getMessage().startswith("signaling reconnects")]
    refusals = [r for r in caplog.records if "refused: unknown CA" in r.getMessage()]
    assert len(attempts) >= 2 and len(refusals) == 1, [r.getMessage() for r in refusals]
    assert type(info.value.original_error).__name__ == "SSLCertVerificationError"


async def test_the_appliance_trusts_its_ca_file_for_a_wss_exchange(tmp_path, ca, edge_cfg):
    """[account] ca_file: a local exchange over wss:// with its own CA; this machine's trust
    store does not know that CA, so only ca_file can make it register."""
    from piphone.appliance import config as appliance_config

    from .appliance_rig import running_service

    cert, key = ca.issue(tmp_path / "edge", ["127.0.0.1"])
    async with edge(edge_cfg, cert, key, port=0) as exchange:
        path = twilio_way(tmp_path, edge_cfg)
        text = path.read_text().replace(
            "[account]\n", f'[account]\nsignaling_url = "{exchange.url}"\nca_file = "ca/ca.pem"\n')
        path.write_text(text)
        async with running_service(appliance_config.load(path)) as service:
            await asyncio.wait_for(service.registered.wait(), 10)
            assert service.device.signaling_url == exchange.url
