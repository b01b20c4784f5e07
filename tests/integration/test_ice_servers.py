"""ICE servers of the appliance (issue 13): the configured ones, and with ``network_traversal``
TURN credentials from Twilio's Network Traversal Service, fetched through the ``twilio`` helper.

A stand-in for Twilio's REST API under its real name (api.twilio.com on 127.0.0.1:443, a test
CA that only ``SSL_CERT_FILE`` trusts) records the request and hands out a TURN server that
is the test's own UDP socket; the STUN server of the config is another. When a call rings, the
phone's ICE gathering asks both: the STUN binding, and a TURN allocation that, challenged,
comes back signed with the credential the service handed out.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aioice import stun
from aioice.turn import make_integrity_key

from piphone.exchange.tls import server_context

from ..conftest import until
from ..hostsns import with_hosts
from ..tlscert import TestCA
from .test_appliance_service import FakeSystemd, environment, stop
from .test_twilio_edge import ROOT, trusting

pytestmark = pytest.mark.net

API = "api.twilio.com"
NTS_USER, NTS_PASSWORD, REALM = "nts-user-1", "nts-password-1", "twilio.test"


class StunServer(asyncio.DatagramProtocol):
    """Answers STUN bindings with the sender's address, challenges a TURN allocation once and
    refuses the signed one (no relay needed here: only what the phone sent)."""

    def __init__(self) -> None:
        self.requests: list[stun.Message] = []
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            request = stun.parse_message(data)
        except ValueError:
            return
        self.requests.append(request)
        if request.message_method == stun.Method.BINDING:
            reply = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE,
                                 request.transaction_id)
            reply.attributes["XOR-MAPPED-ADDRESS"] = addr
        elif "USERNAME" not in request.attributes:
            reply = stun.Message(request.message_method, stun.Class.ERROR,
                                 request.transaction_id)
            reply.attributes.update({"ERROR-CODE": (401, "Unauthorized"), "REALM": REALM,
                                     "NONCE": b"nonce-1"})
        else:
            reply = stun.Message(request.message_method, stun.Class.ERROR,
                                 request.transaction_id)
            reply.attributes["ERROR-CODE"] = (403, "Forbidden")
        self.transport.sendto(bytes(reply), addr)

    @property
    def port(self) -> int:
        return self.transport.get_extra_info("sockname")[1]

    def signed(self) -> list[stun.Message]:
        return [r for r in self.requests if "USERNAME" in r.attributes]


async def udp_server() -> StunServer:
    _, server = await asyncio.get_running_loop().create_datagram_endpoint(
        StunServer, local_addr=("127.0.0.1", 0))
    return server


class TwilioApi:
    """POST /2010-04-01/Accounts/{sid}/Tokens.json, as Twilio answers it (or ``status``)."""

    def __init__(self, turn_port: int, status: int = 201) -> None:
        self.turn_port, self.status = turn_port, status
        self.requests: list[tuple[str, str, dict]] = []
        self.runner: web.AppRunner | None = None

    async def tokens(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.requests.append((request.path, request.headers.get("Authorization", ""), form))
        if self.status != 201:
            return web.json_response({"code": 20003, "message": "Authenticate",
                                      "status": self.status}, status=self.status)
        sid = request.match_info["sid"]
        turn = f"turn:127.0.0.1:{self.turn_port}?transport=udp"
        return web.json_response({
            "account_sid": sid, "date_created": "Mon, 07 Dec 2026 12:00:00 +0000",
            "date_updated": "Mon, 07 Dec 2026 12:00:00 +0000", "ttl": form.get("Ttl"),
            "username": NTS_USER, "password": NTS_PASSWORD,
            "ice_servers": [{"url": turn, "urls": turn, "username": NTS_USER,
                             "credential": NTS_PASSWORD}],
        }, status=201)

    async def start(self, cert: Path, key: Path) -> None:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Tokens.json", self.tokens)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 443,
                          ssl_context=server_context(cert, key)).start()

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def phone_config(folder: Path, exchange, stun_port: int) -> Path:
    cfg = exchange.config
    path = folder / "piphone.toml"
    path.write_text(f"""\
[account]
identity = "alice"
signaling_url = "{exchange.url}"
account_sid = "{cfg.account_sid}"
api_key_sid = "{cfg.api_key_sid}"
ice_addresses = ["127.0.0.1"]
ice_servers = [{{urls = "stun:127.0.0.1:{stun_port}"}}]
network_traversal = true

[audio]
headset = "none"

[phone]
call_log = ""
""")
    secrets = folder / "secrets.toml"
    secrets.write_text(f'[account]\napi_key_secret = "{cfg.api_key_secret}"\n')
    secrets.chmod(0o600)
    return path


async def run_phone(tmp_path, ca: TestCA, config: Path, systemd: FakeSystemd):
    env = trusting(tmp_path, ca.cert, environment(systemd, WATCHDOG_USEC="0"))
    env.pop("REQUESTS_CA_BUNDLE")  # the system's store (SSL_CERT_FILE), not requests' own
    argv = with_hosts(tmp_path, [API], [sys.executable, "-m", "piphone", "run", "--config",
                                        str(config)])
    return await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)


@pytest.fixture
async def stun_and_turn():
    servers = (await udp_server(), await udp_server())
    yield servers
    for server in servers:
        server.transport.close()


async def test_network_traversal_credentials_reach_the_calls(tmp_path, exchange, make_phone,
                                                             stun_and_turn):
    stun_server, turn_server = stun_and_turn
    ca = TestCA.create(tmp_path / "ca")
    api = TwilioApi(turn_server.port)
    await api.start(*ca.issue(tmp_path / "api", [API]))
    systemd = FakeSystemd(tmp_path / "notify")
    proc = await run_phone(tmp_path, ca, phone_config(tmp_path, exchange, stun_server.port),
                           systemd)
    try:
        await until(lambda: systemd.got("READY=1") or proc.returncode is not None,
                    timeout=30, what="READY=1")
        await until(lambda: api.requests, timeout=15, what="the Tokens request")
        ((path, auth, form),) = api.requests
        cfg = exchange.config
        assert path == f"/2010-04-01/Accounts/{cfg.account_sid}/Tokens.json"
        assert auth == "Basic " + base64.b64encode(
            f"{cfg.api_key_sid}:{cfg.api_key_secret}".encode()).decode()
        assert form == {"Ttl": "86400"}
        bob = await make_phone("bob")
        await bob.device.connect({"To": "client:alice"})  # alice gathers while it rings
        await until(lambda: turn_server.signed() and stun_server.requests, timeout=15,
                    what="a STUN binding and a signed TURN allocation")
        assert stun_server.requests[0].message_method == stun.Method.BINDING
        allocate = turn_server.signed()[0]
        assert allocate.message_method == stun.Method.ALLOCATE
        assert allocate.attributes["USERNAME"] == NTS_USER
        # signed with the credential Twilio handed out
        received = allocate.attributes["MESSAGE-INTEGRITY"]
        allocate.add_message_integrity(make_integrity_key(NTS_USER, REALM, NTS_PASSWORD))
        assert allocate.attributes["MESSAGE-INTEGRITY"] == received
    finally:
        code, err = await stop(proc)
        systemd.close()
        await api.close()
    assert code == 0, err
    assert "ICE servers: 1 configured + 1 from Twilio's Network Traversal Service" in err, err
    assert NTS_PASSWORD not in err and cfg.api_key_secret not in err


async def test_a_failed_fetch_is_logged_and_the_phone_works_on(tmp_path, exchange, make_phone,
                                                               stun_and_turn):
    stun_server, _ = stun_and_turn
    ca = TestCA.create(tmp_path / "ca")
    api = TwilioApi(0, status=401)
    await api.start(*ca.issue(tmp_path / "api", [API]))
    systemd = FakeSystemd(tmp_path / "notify")
    proc = await run_phone(tmp_path, ca, phone_config(tmp_path, exchange, stun_server.port),
                           systemd)
    try:
        await until(lambda: systemd.got("READY=1") or proc.returncode is not None,
                    timeout=30, what="READY=1")
        await until(lambda: api.requests, timeout=15, what="the Tokens request")
        bob = await make_phone("bob")
        await bob.device.connect({"To": "client:alice"})
        await until(lambda: any(s.startswith("ringing") for s in systemd.statuses()),
                    timeout=15, what="the phone rings")
        assert stun_server.requests  # with the configured server it has
    finally:
        code, err = await stop(proc)
        systemd.close()
        await api.close()
    assert code == 0, err
    assert ("could not fetch TURN credentials from Twilio's Network Traversal Service: "
            "HTTP 401, Twilio error 20003") in err, err
    assert "calls go on with 1 configured ICE server(s)" in err
