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

import base64
import email.parser
import email.policy
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .tlscert import TestCA

API, SERVERLESS, UPLOAD = "api.twilio.com", "serverless.twilio.com", "serverless-upload.twilio.com"
HOSTS = (API, SERVERLESS, UPLOAD)
DEMO_VOICE_URL = "https://demo.twilio.com/welcome/voice/"  # a new number's Voice URL
DEFAULT_DEPENDENCIES = [{"name": "twilio", "version": "5.0.3"},
                        {"name": "@twilio/runtime-handler", "version": "2.0.1"}]
_SID = re.compile(r"\b(AC|ZS|ZE|ZH|ZN|ZB|ZD|PN|AP|SK)[0-9a-f]{32}\b")


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class Request:
    """One request as the stand-in received it."""

    method: str
    host: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    files: dict[str, tuple[str, str, bytes]]  # field -> (file name, content type, content)
    user: str | None  # the Basic auth user: an AC... or SK... SID
    status: int = 0  # what the stand-in answered

    def value(self, name: str) -> str | None:
        values = self.form.get(name) or self.query.get(name)
        return values[0] if values else None

    @property
    def shape(self) -> tuple[str, str, str]:
        """(method, host, path) with every SID shown as its prefix and ``*``."""
        return self.method, self.host, _SID.sub(r"\1*", self.path)


class TwilioError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class _Route:
    host: str
    method: str
    pattern: re.Pattern
    handler: Callable[..., tuple[int, dict]]


@dataclass
class TwilioRest:
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
        self._status_reads: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = self._make_routes()

    # --- the account's contents --------------------------------------------------------------
    def add_number(self, phone_number: str, *, voice_url: str = DEMO_VOICE_URL,
                   voice_application_sid: str = "", trunk_sid: str | None = None) -> dict:
        sid = new_sid("PN")
        self.numbers[sid] = {
            **self._v2010(f"IncomingPhoneNumbers/{sid}"), "sid": sid,
            "friendly_name": phone_number, "phone_number": phone_number,
            "voice_url": voice_url, "voice_method": "POST", "voice_fallback_url": "",
            "voice_fallback_method": "POST", "voice_application_sid": voice_application_sid,
            "voice_caller_id_lookup": False, "voice_receive_mode": "voice", "trunk_sid": trunk_sid,
            "status_callback": "", "status": "in-use", "origin": "twilio",
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "emergency_status": "Inactive", "address_requirements": "none", "beta": False}
        return self.numbers[sid]

    def add_caller_id(self, phone_number: str) -> dict:
        sid = new_sid("PN")
        self.caller_ids[sid] = {**self._v2010(f"OutgoingCallerIds/{sid}"), "sid": sid,
                                "friendly_name": phone_number, "phone_number": phone_number}
        return self.caller_ids[sid]

    def add_key(self, friendly_name: str) -> tuple[str, str]:
        """A key made elsewhere: (sid, secret)."""
        record = self._new_key(friendly_name)
        return record["sid"], self.key_secrets[record["sid"]]

    def _new_key(self, friendly_name: str) -> dict:
        sid = new_sid("SK")
        self.key_secrets[sid] = secrets.token_urlsafe(24)
        self.keys[sid] = {"sid": sid, "friendly_name": friendly_name,
                          "date_created": _rfc2822(), "date_updated": _rfc2822()}
        return self.keys[sid]

    def _v2010(self, rest: str) -> dict:
        return {"account_sid": self.account_sid, "api_version": "2010-04-01",
                "date_created": _rfc2822(), "date_updated": _rfc2822(),
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/{rest}.json"}

    # --- serving -----------------------------------------------------------------------------
    def start(self) -> TwilioRest:
        ca = TestCA.create(self.folder / "rest-ca")
        cert, key = ca.issue(self.folder / "rest-ca", list(HOSTS), stem="twilio-rest")
        self.ca_file = ca.cert
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = ThreadingHTTPServer(("127.0.0.1", 443), _handler(self))
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
               ) -> tuple[int, dict]:
        url = urlsplit(target)
        request = Request(method, host, url.path, parse_qs(url.query, keep_blank_values=True),
                          {}, {}, None)
        with self._lock:
            self.requests.append(request)
            try:
                request.form, request.files = _body(headers.get("Content-Type", ""), body)
                request.user, password = _basic_auth(headers.get("Authorization"))
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

    def _route(self, request: Request) -> tuple[int, dict]:
        for method, host, pattern, status, code, message in self.refusals:
            if (method, host) == (request.method, request.host) and re.fullmatch(
                    pattern, request.path):
                raise TwilioError(status, code, message)
        for route in self._routes:
            if route.host == request.host and route.method == request.method:
                match = route.pattern.fullmatch(request.path)
                if match:
                    return route.handler(request, *match.groups())
        raise _not_found(request.path)

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

    # --- api.twilio.com (2010-04-01) ---------------------------------------------------------
    def _account(self, request: Request, account_sid: str) -> None:
        if account_sid != self.account_sid:
            raise _not_found(request.path)

    def _get_account(self, request: Request, account_sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        return 200, {"sid": self.account_sid,
                     "owner_account_sid": self.account_sid, "auth_token": self.auth_token,
                     "friendly_name": "My first Twilio account", "status": "active",
                     "type": "Trial" if self.trial else "Full", "date_created": _rfc2822(),
                     "date_updated": _rfc2822(),
                     "uri": f"/2010-04-01/Accounts/{self.account_sid}.json"}

    def _list_numbers(self, request: Request, account_sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        records = [n for n in self.numbers.values()
                   if _number_matches(request.value("PhoneNumber"), n["phone_number"])]
        return 200, self._v2010_page(request, "incoming_phone_numbers", records)

    def _update_number(self, request: Request, account_sid: str, sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        number = self.numbers.get(sid) or _raise(_not_found(request.path))
        for name, key in (("VoiceUrl", "voice_url"), ("VoiceMethod", "voice_method"),
                          ("VoiceApplicationSid", "voice_application_sid")):
            if request.value(name) is not None:
                number[key] = request.value(name)
        if number["voice_method"] not in ("GET", "POST"):
            raise TwilioError(400, 21207, "VoiceMethod is not valid")
        number["date_updated"] = _rfc2822()
        return 200, number

    def _list_caller_ids(self, request: Request, account_sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        records = [c for c in self.caller_ids.values()
                   if _number_matches(request.value("PhoneNumber"), c["phone_number"])]
        return 200, self._v2010_page(request, "outgoing_caller_ids", records)

    def _list_keys(self, request: Request, account_sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        return 200, self._v2010_page(request, "keys", list(self.keys.values()))

    def _create_key(self, request: Request, account_sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        if request.user != self.account_sid:  # an API key cannot make keys
            raise TwilioError(401, 20003, "Authenticate")
        record = self._new_key(request.value("FriendlyName") or "")
        return 201, {**record, "secret": self.key_secrets[record["sid"]]}

    def _list_applications(self, request: Request, account_sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        name = request.value("FriendlyName")
        records = [a for a in self.applications.values()
                   if name is None or a["friendly_name"] == name]
        return 200, self._v2010_page(request, "applications", records)

    def _create_application(self, request: Request, account_sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        sid = new_sid("AP")
        self.applications[sid] = {
            **self._v2010(f"Applications/{sid}"), "sid": sid,
            "friendly_name": request.value("FriendlyName") or sid,
            "voice_url": request.value("VoiceUrl"),
            "voice_method": request.value("VoiceMethod") or "POST", "voice_fallback_url": None,
            "voice_fallback_method": "POST", "status_callback": None,
            "status_callback_method": "POST", "voice_caller_id_lookup": False,
            "sms_url": None, "sms_method": "POST", "public": False}
        return 201, self.applications[sid]

    def _update_application(self, request: Request, account_sid: str, sid: str
                            ) -> tuple[int, dict]:
        self._account(request, account_sid)
        app = self.applications.get(sid) or _raise(_not_found(request.path))
        for name, key in (("FriendlyName", "friendly_name"), ("VoiceUrl", "voice_url"),
                          ("VoiceMethod", "voice_method")):
            if request.value(name) is not None:
                app[key] = request.value(name)
        app["date_updated"] = _rfc2822()
        return 200, app

    def _v2010_page(self, request: Request, key: str, records: list[dict]) -> dict:
        size, page = _paging(request, self.page_size)
        chunk = records[page * size:(page + 1) * size]
        filters = {k: v[0] for k, v in request.query.items()
                   if k not in ("Page", "PageSize", "PageToken")}

        def uri(number: int) -> str:
            paging = {"PageSize": size, "Page": number}
            if number:
                paging["PageToken"] = f"PA{number}"
            return f"{request.path}?{urlencode({**filters, **paging})}"

        more = (page + 1) * size < len(records)
        return {key: chunk, "first_page_uri": uri(0), "uri": uri(page),
                "next_page_uri": uri(page + 1) if more else None,
                "previous_page_uri": uri(page - 1) if page else None,
                "page": page, "page_size": size, "start": page * size,
                "end": page * size + max(len(chunk) - 1, 0)}

    # --- serverless.twilio.com (v1) ----------------------------------------------------------
    def _service(self, request: Request, ref: str) -> dict:
        for service in self.services.values():
            if ref in (service["sid"], service["unique_name"]):
                return service
        raise _not_found(request.path)

    def _v1(self, path: str) -> dict:
        now = _iso()
        return {"account_sid": self.account_sid, "date_created": now, "date_updated": now,
                "url": f"https://{SERVERLESS}/v1/{path}"}

    def _list_services(self, request: Request) -> tuple[int, dict]:
        return 200, self._v1_page(request, "services", list(self.services.values()))

    def _create_service(self, request: Request) -> tuple[int, dict]:
        unique = _required(request, "UniqueName")
        friendly = _required(request, "FriendlyName")
        if not re.fullmatch(r"[A-Za-z0-9-]{1,50}", unique):
            raise TwilioError(400, 20001, "UniqueName must be URL-friendly, 50 characters or less")
        if any(s["unique_name"] == unique for s in self.services.values()):
            raise TwilioError(409, 54301, "Unique name already in use")
        sid = new_sid("ZS")
        self.services[sid] = {
            **self._v1(f"Services/{sid}"), "sid": sid, "unique_name": unique,
            "friendly_name": friendly, "domain_base": f"{unique}-{secrets.randbelow(9000) + 1000}",
            "include_credentials": request.value("IncludeCredentials") != "false",
            "ui_editable": request.value("UiEditable") == "true",
            "links": {"environments": f"https://{SERVERLESS}/v1/Services/{sid}/Environments"}}
        return 201, self.services[sid]

    def _list_environments(self, request: Request, ref: str) -> tuple[int, dict]:
        service = self._service(request, ref)
        records = [e for e in self.environments.values() if e["service_sid"] == service["sid"]]
        return 200, self._v1_page(request, "environments", records)

    def _create_environment(self, request: Request, ref: str) -> tuple[int, dict]:
        service = self._service(request, ref)
        unique = _required(request, "UniqueName")
        suffix = request.value("DomainSuffix")
        if any(e["unique_name"] == unique and e["service_sid"] == service["sid"]
               for e in self.environments.values()):
            raise TwilioError(409, 54301, "Unique name already in use")
        sid = new_sid("ZE")
        domain = service["domain_base"] + (f"-{suffix}" if suffix else "") + ".twil.io"
        self.environments[sid] = {
            **self._v1(f"Services/{service['sid']}/Environments/{sid}"), "sid": sid,
            "service_sid": service["sid"], "build_sid": None, "unique_name": unique,
            "domain_suffix": suffix, "domain_name": domain, "links": {}}
        return 201, self.environments[sid]

    def _list_functions(self, request: Request, ref: str) -> tuple[int, dict]:
        service = self._service(request, ref)
        records = [f for f in self.functions.values() if f["service_sid"] == service["sid"]]
        return 200, self._v1_page(request, "functions", records)

    def _create_function(self, request: Request, ref: str) -> tuple[int, dict]:
        service = self._service(request, ref)
        sid = new_sid("ZH")
        self.functions[sid] = {
            **self._v1(f"Services/{service['sid']}/Functions/{sid}"), "sid": sid,
            "service_sid": service["sid"], "friendly_name": _required(request, "FriendlyName"),
            "links": {}}
        return 201, self.functions[sid]

    def _upload_version(self, request: Request, ref: str, function_sid: str
                        ) -> tuple[int, dict]:
        service = self._service(request, ref)
        fn = self.functions.get(function_sid)
        if fn is None or fn["service_sid"] != service["sid"]:
            raise _not_found(request.path)
        path = _required(request, "Path")
        visibility = _required(request, "Visibility")
        if visibility not in ("public", "protected", "private"):
            raise TwilioError(400, 20001, "Visibility must be public, protected or private")
        if "Content" not in request.files:
            raise TwilioError(400, 20001, "Missing required parameter Content")
        sid = new_sid("ZN")
        self.versions[sid] = {
            "sid": sid, "account_sid": self.account_sid, "service_sid": service["sid"],
            "function_sid": function_sid, "path": path if path.startswith("/") else "/" + path,
            "visibility": visibility, "date_created": _iso(),
            "url": f"https://{SERVERLESS}/v1/Services/{service['sid']}/Functions/"
                   f"{function_sid}/Versions/{sid}", "links": {}}
        self.contents[sid] = request.files["Content"][2].decode()
        return 201, self.versions[sid]

    def _get_content(self, request: Request, ref: str, function_sid: str, sid: str
                     ) -> tuple[int, dict]:
        service = self._service(request, ref)
        version = self.versions.get(sid)
        if version is None or (version["service_sid"], version["function_sid"]) != (
                service["sid"], function_sid):
            raise _not_found(request.path)
        return 200, {key: version[key] for key in ("sid", "account_sid", "service_sid",
                                                    "function_sid")} | {
            "content": self.contents[sid], "url": version["url"] + "/Content"}

    def _create_build(self, request: Request, ref: str) -> tuple[int, dict]:
        service = self._service(request, ref)
        wanted = request.form.get("FunctionVersions", [])
        if not wanted and not request.form.get("AssetVersions"):
            raise TwilioError(400, 20001, "At least one function version or asset version is "
                                          "required")
        versions = []
        for sid in wanted:
            version = self.versions.get(sid)
            if version is None or version["service_sid"] != service["sid"]:
                raise TwilioError(400, 20001, f"Invalid function version {sid}")
            versions.append({k: version[k] for k in (
                "sid", "account_sid", "service_sid", "function_sid", "path", "visibility",
                "date_created")})
        dependencies = json.loads(request.value("Dependencies") or "null") or DEFAULT_DEPENDENCIES
        sid = new_sid("ZB")
        self.builds[sid] = {
            **self._v1(f"Services/{service['sid']}/Builds/{sid}"), "sid": sid,
            "service_sid": service["sid"], "status": "building", "asset_versions": [],
            "function_versions": versions, "dependencies": dependencies,
            "runtime": request.value("Runtime") or "node22",
            "links": {"build_status": f"https://{SERVERLESS}/v1/Services/{service['sid']}/"
                                      f"Builds/{sid}/Status"}}
        return 201, self.builds[sid]

    def _build(self, request: Request, ref: str, sid: str) -> dict:
        service = self._service(request, ref)
        build = self.builds.get(sid)
        if build is None or build["service_sid"] != service["sid"]:
            raise _not_found(request.path)
        return build

    def _get_build(self, request: Request, ref: str, sid: str) -> tuple[int, dict]:
        return 200, self._build(request, ref, sid)

    def _get_build_status(self, request: Request, ref: str, sid: str) -> tuple[int, dict]:
        build = self._build(request, ref, sid)
        if build["status"] == "building":
            reads = self._status_reads.get(sid, 0)
            self._status_reads[sid] = reads + 1
            build["status"] = self.build_statuses[min(reads, len(self.build_statuses) - 1)]
        return 200, {"sid": sid, "account_sid": self.account_sid,
                     "service_sid": build["service_sid"], "status": build["status"],
                     "url": build["links"]["build_status"]}

    def _create_deployment(self, request: Request, ref: str, environment_sid: str
                           ) -> tuple[int, dict]:
        service = self._service(request, ref)
        environment = self.environments.get(environment_sid)
        if environment is None or environment["service_sid"] != service["sid"]:
            raise _not_found(request.path)
        build = self.builds.get(_required(request, "BuildSid"))
        if build is None or build["service_sid"] != service["sid"]:
            raise TwilioError(400, 20001, "Invalid build")
        if build["status"] != "completed":
            raise TwilioError(400, 20001, f"Build {build['sid']} is {build['status']}, not "
                                          "completed")
        sid = new_sid("ZD")
        self.deployments[sid] = {
            **self._v1(f"Services/{service['sid']}/Environments/{environment_sid}/"
                       f"Deployments/{sid}"), "sid": sid, "service_sid": service["sid"],
            "environment_sid": environment_sid, "build_sid": build["sid"]}
        environment["build_sid"] = build["sid"]
        return 201, self.deployments[sid]

    def _v1_page(self, request: Request, key: str, records: list[dict]) -> dict:
        size, page = _paging(request, self.page_size)
        chunk = records[page * size:(page + 1) * size]
        base = f"https://{request.host}{request.path}"

        def url(number: int) -> str:
            paging = {"PageSize": size, "Page": number}
            if number:
                paging["PageToken"] = f"PT{number}"
            return f"{base}?{urlencode(paging)}"

        more = (page + 1) * size < len(records)
        return {key: chunk, "meta": {
            "page": page, "page_size": size, "first_page_url": url(0), "url": url(page),
            "previous_page_url": url(page - 1) if page else None,
            "next_page_url": url(page + 1) if more else None, "key": key}}


# --- HTTP plumbing ----------------------------------------------------------------------------
def _handler(rest: TwilioRest) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the helper's session expects

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            host = (self.headers.get("Host") or "").split(":")[0]
            status, payload = rest.handle(self.command, host, self.path, self.headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _body(content_type: str, body: bytes
          ) -> tuple[dict[str, list[str]], dict[str, tuple[str, str, bytes]]]:
    if content_type.startswith("application/x-www-form-urlencoded"):
        return parse_qs(body.decode(), keep_blank_values=True), {}
    if content_type.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        form: dict[str, list[str]] = {}
        files: dict[str, tuple[str, str, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if part.get_filename() is not None:
                files[name] = (part.get_filename(), part.get_content_type(), payload)
            else:
                form.setdefault(name, []).append(payload.decode())
        return form, files
    return {}, {}


def _basic_auth(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.startswith("Basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return user, password


def _paging(request: Request, default: int) -> tuple[int, int]:
    try:
        size = int(request.value("PageSize") or default)
        page = int(request.value("Page") or 0)
    except ValueError:
        raise TwilioError(400, 20001, "Invalid paging parameters") from None
    if not 1 <= size <= 1000 or page < 0:
        raise TwilioError(400, 20001, "Invalid paging parameters")
    return size, page


def _number_matches(pattern: str | None, number: str) -> bool:
    """Twilio's PhoneNumber filter: a part of the number, ``*`` for any digit."""
    if pattern is None:
        return True
    return re.search(re.escape(pattern).replace(r"\*", "[0-9]"), number) is not None


def _required(request: Request, name: str) -> str:
    value = request.value(name)
    if value is None or value == "":
        raise TwilioError(400, 20001, f"Missing required parameter {name} in the post body")
    return value


def _not_found(path: str) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {path} was not found")


def _raise(exc: Exception) -> Any:
    raise exc


def _rfc2822() -> str:
    return formatdate(time.time(), usegmt=True).replace("GMT", "+0000")


def _iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def shapes(requests: Iterable[Request]) -> list[tuple[str, str, str]]:
    return [r.shape for r in requests]
