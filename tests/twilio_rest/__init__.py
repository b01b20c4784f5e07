"""A stand-in for Twilio's REST API that records every request, for tests.

It serves HTTPS on 127.0.0.1:443 under Twilio's real host names (a certificate from a test CA,
tests/tlscert.py; `hostsns.with_hosts` sends the names to 127.0.0.1 for the command under
test, which trusts the CA through REQUESTS_CA_BUNDLE) and answers as Twilio does: the JSON
shapes of the resources the `twilio` helper reads, paged lists (v2010's ``*_page_uri`` and
v1's ``meta``), 401 with code 20003 for wrong credentials, 404 with 20404 for what does not
exist, 400/409 for what Twilio refuses. It holds one account: its numbers, verified caller
IDs, API keys (whose secrets authenticate too), TwiML Apps, and Serverless services with
their environments, functions, versions, builds and deployments.

    rest = TwilioRest(tmp_path).start()
    rest.add_number("+15551230001")
    subprocess.run(with_hosts(tmp_path, HOSTS, argv), env=rest.env())
    rest.writes()  # every request but GETs
    rest.close()

Needs root in a loopback-only network namespace (port 443), as the suite runs.
"""

from __future__ import annotations

import os
import re
import secrets
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..tlscert import TestCA
from .api2010 import Api2010
from .calls import Calls
from .recordings import Recordings
from .serverless import Serverless
from .wire import (
    API,
    DEMO_VOICE_URL,
    HOSTS,
    SERVERLESS,
    UPLOAD,
    Request,
    TwilioError,
    basic_auth,
    body_of,
    handler_for,
    new_sid,
    not_found,
    shapes,
)

__all__ = ["API", "DEMO_VOICE_URL", "HOSTS", "SERVERLESS", "UPLOAD", "Request", "TwilioRest",
           "new_sid", "shapes"]


@dataclass
class _Route:
    host: str
    method: str
    pattern: re.Pattern
    handler: Callable[..., tuple[int, dict]]


@dataclass
class TwilioRest(Api2010, Calls, Serverless, Recordings):
    """One account's REST API; the resource handlers are in api2010.py and serverless.py."""

    folder: Path
    account_sid: str = field(default_factory=lambda: new_sid("AC"))
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    trial: bool = False
    page_size: int = 50  # Twilio's default page size
    build_statuses: tuple[str, ...] = ("completed",)  # what successive Status reads say
    requests: list[Request] = field(default_factory=list)
    # Requests to refuse as Twilio would: (method, host, path regex, status, code, message).
    refusals: list[tuple[str, str, str, int, int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.numbers: dict[str, dict] = {}
        self.caller_ids: dict[str, dict] = {}
        self.keys: dict[str, dict] = {}
        self.key_secrets: dict[str, str] = {}
        self.applications: dict[str, dict] = {}
        self.services: dict[str, dict] = {}
        self.environments: dict[str, dict] = {}
        self.functions: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}
        self.contents: dict[str, str] = {}
        self.builds: dict[str, dict] = {}
        self.deployments: dict[str, dict] = {}
        self.recordings: dict[str, dict] = {}
        self.calls: dict[str, dict] = {}
        self.media: dict[str, bytes] = {}  # RE sid -> the .wav
        self._status_reads: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = self._make_routes()

    # --- serving -----------------------------------------------------------------------------
    def start(self) -> TwilioRest:
        ca = TestCA.create(self.folder / "rest-ca")
        cert, key = ca.issue(self.folder / "rest-ca", list(HOSTS), stem="twilio-rest")
        self.ca_file = ca.cert
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = ThreadingHTTPServer(("127.0.0.1", 443), handler_for(self))
        server.daemon_threads = True
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="twilio-rest", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(5)
            self._server = None

    def env(self, base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
        """An environment in which requests (and so the helper) trust only the test CA."""
        drop = {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_EDGE", "TWILIO_REGION",
                "SSL_CERT_DIR", "CURL_CA_BUNDLE"}
        env = {k: v for k, v in (os.environ if base is None else base).items()
               if k not in drop and not k.lower().endswith("_proxy")}
        env.update(REQUESTS_CA_BUNDLE=str(self.ca_file), SSL_CERT_FILE=str(self.ca_file))
        env.update(extra)
        return env

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.method != "GET"]

    def __enter__(self) -> TwilioRest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one request -------------------------------------------------------------------------
    def handle(self, method: str, host: str, target: str, headers: Any, body: bytes
               ) -> tuple[int, dict | bytes]:
        url = urlsplit(target)
        request = Request(method, host, url.path, parse_qs(url.query, keep_blank_values=True),
                          {}, {}, None)
        with self._lock:
            self.requests.append(request)
            try:
                request.form, request.files = body_of(headers.get("Content-Type", ""), body)
                request.user, password = basic_auth(headers.get("Authorization"))
                if not self._authenticated(request.user, password):
                    raise TwilioError(401, 20003, "Authenticate")
                status, payload = self._route(request)
            except TwilioError as exc:
                status, payload = exc.status, {
                    "code": exc.code, "message": exc.message, "status": exc.status,
                    "more_info": f"https://www.twilio.com/docs/errors/{exc.code}"}
            request.status = status
            return status, payload

    def _authenticated(self, user: str | None, password: str | None) -> bool:
        if user == self.account_sid:
            return password == self.auth_token
        return user in self.key_secrets and password == self.key_secrets[user]

    def _route(self, request: Request) -> tuple[int, dict | bytes]:
        for method, host, pattern, status, code, message in self.refusals:
            if (method, host) == (request.method, request.host) and re.fullmatch(
                    pattern, request.path):
                raise TwilioError(status, code, message)
        for route in self._routes:
            if route.host == request.host and route.method == request.method:
                match = route.pattern.fullmatch(request.path)
                if match:
                    return route.handler(request, *match.groups())
        raise not_found(request.path)

    def _make_routes(self) -> list[_Route]:
        acct = r"/2010-04-01/Accounts/(AC[0-9a-f]{32})"
        svc = r"/v1/Services/([^/]+)"
        table = [
            (API, "GET", acct + r"\.json", self._get_account),
            (API, "GET", acct + r"/IncomingPhoneNumbers\.json", self._list_numbers),
            (API, "POST", acct + r"/IncomingPhoneNumbers/(PN[0-9a-f]{32})\.json",
             self._update_number),
            (API, "GET", acct + r"/OutgoingCallerIds\.json", self._list_caller_ids),
            (API, "GET", acct + r"/Keys\.json", self._list_keys),
            (API, "POST", acct + r"/Keys\.json", self._create_key),
            (API, "GET", acct + r"/Applications\.json", self._list_applications),
            (API, "POST", acct + r"/Applications\.json", self._create_application),
            (API, "POST", acct + r"/Applications/(AP[0-9a-f]{32})\.json",
             self._update_application),
            (API, "GET", acct + r"/Recordings\.json", self._list_recordings),
            (API, "GET", acct + r"/Recordings/(RE[0-9a-f]{32})\.wav", self._get_media),
            (API, "DELETE", acct + r"/Recordings/(RE[0-9a-f]{32})\.json",
             self._delete_recording),
            (API, "GET", acct + r"/Calls\.json", self._list_calls),
            (API, "GET", acct + r"/Calls/(CA[0-9a-f]{32})\.json", self._get_call),
            (API, "POST", acct + r"/Calls/(CA[0-9a-f]{32})\.json", self._update_call),
            (SERVERLESS, "GET", r"/v1/Services", self._list_services),
            (SERVERLESS, "POST", r"/v1/Services", self._create_service),
            (SERVERLESS, "GET", svc + r"/Environments", self._list_environments),
            (SERVERLESS, "POST", svc + r"/Environments", self._create_environment),
            (SERVERLESS, "GET", svc + r"/Functions", self._list_functions),
            (SERVERLESS, "POST", svc + r"/Functions", self._create_function),
            (SERVERLESS, "GET", svc + r"/Functions/(ZH[0-9a-f]{32})/Versions/(ZN[0-9a-f]{32})"
             r"/Content", self._get_content),
            (SERVERLESS, "POST", svc + r"/Builds", self._create_build),
            (SERVERLESS, "GET", svc + r"/Builds/(ZB[0-9a-f]{32})", self._get_build),
            (SERVERLESS, "GET", svc + r"/Builds/(ZB[0-9a-f]{32})/Status", self._get_build_status),
            (SERVERLESS, "POST", svc + r"/Environments/(ZE[0-9a-f]{32})/Deployments",
             self._create_deployment),
            (UPLOAD, "POST", svc + r"/Functions/(ZH[0-9a-f]{32})/Versions", self._upload_version),
        ]
        return [_Route(h, m, re.compile(p), f) for h, m, p, f in table]

