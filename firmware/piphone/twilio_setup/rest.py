"""Twilio's REST API through the official helper: credentials in, clear errors out.

The auth token and API key secrets never reach a message: errors quote Twilio's answer (its
code and message), the request's method and URL, never the request's credentials.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import ssl
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from ..errors import PiphoneError
from ..tomlconfig import sid

HTTP_TIMEOUT = 30.0  # seconds for one request (the helper waits forever by default)
UPLOAD_HOST = "https://serverless-upload.twilio.com"
CONSOLE = "https://console.twilio.com"


class SetupError(PiphoneError):
    """`piphone twilio setup` cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Credentials:
    account_sid: str
    auth_token: str = field(repr=False)


def read_credentials(environ: Mapping[str, str] = os.environ, *,
                     ask: Callable[[str], str] = input,
                     ask_secret: Callable[[str], str] = getpass.getpass,
                     interactive: bool | None = None) -> Credentials:
    """TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN as Twilio's CLI reads them, else asked on the
    terminal (the auth token without echo). Neither is ever a command-line argument."""
    if interactive is None:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    account_sid = environ.get("TWILIO_ACCOUNT_SID", "").strip()
    token = environ.get("TWILIO_AUTH_TOKEN", "").strip()
    if (not account_sid or not token) and not interactive:
        raise SetupError("set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (Account Info in "
                         f"{CONSOLE}), or run this on a terminal to be asked for them")
    try:
        if not account_sid:
            account_sid = ask("Twilio Account SID (AC...): ").strip()
        _check_account_sid(account_sid)
        if not token:
            token = ask_secret("Twilio auth token (not shown): ").strip()
    except EOFError:  # Ctrl-D at a prompt
        raise SetupError("no credentials given") from None
    if not token:
        raise SetupError(f"no auth token given (Account Info in {CONSOLE})")
    return Credentials(account_sid, token)


def _check_account_sid(account_sid: str) -> None:
    # Never echo what was given: a token pasted at the wrong prompt must not be printed.
    if sid("AC")(account_sid):
        raise SetupError(f"that Account SID is not AC followed by 32 hex digits "
                         f"({len(account_sid)} characters given): copy it from Account Info "
                         f"in {CONSOLE}")


def connect(username: str, password: str, account_sid: str | None = None) -> Client:
    """A helper client whose requests time out."""
    return Client(username, password, account_sid=account_sid,
                  http_client=TwilioHttpClient(timeout=HTTP_TIMEOUT))


@contextlib.contextmanager
def talking_to_twilio(doing: str) -> Iterator[None]:
    """Turn what the helper and requests raise into one SetupError that says what failed."""
    try:
        yield
    except TwilioRestException as exc:
        raise SetupError(describe(exc, doing)) from None
    except requests.exceptions.SSLError as exc:
        raise SetupError(f"cannot {doing}: the TLS connection to {_host(exc)} was refused: "
                         f"{_tls_reason(exc)} (a wrong system clock does that too)") from None
    except requests.RequestException as exc:
        raise SetupError(f"cannot {doing}: {_host(exc)} did not answer ({_short(exc)}); is this "
                         "machine online?") from None
    except OSError as exc:  # e.g. REQUESTS_CA_BUNDLE naming no file (requests raises it bare)
        raise SetupError(f"cannot {doing}: {_short(exc)}") from None
    except TwilioException as exc:
        response = exc.args[1] if len(exc.args) > 1 else None
        if isinstance(response, Response):  # a list's page refused ("Unable to fetch page")
            raise SetupError(describe(_as_rest_error(response), doing)) from None
        raise SetupError(f"cannot {doing}: Twilio's answer was not understood "
                         f"({_short(exc)})") from None


def describe(exc: TwilioRestException, doing: str) -> str:
    if exc.status == 401 or exc.code == 20003:
        return (f"Twilio refused the Account SID and auth token (HTTP {exc.status}, error "
                f"{exc.code or 20003}): copy both from Account Info in {CONSOLE}")
    message = " ".join(str(exc.msg or "").split())[:300]
    code = f", error {exc.code}" if exc.code else ""
    return f"Twilio refused to {doing}: {message} (HTTP {exc.status}{code})"


def upload_function_version(client: Client, service_sid: str, function_sid: str, path: str,
                            visibility: str, code: str) -> str:
    """Create a Function Version with ``code``; its SID.

    The helper has no call for this: a version's code is a multipart upload to
    serverless-upload.twilio.com and the helper's HTTP client sends only form fields. So it
    goes through requests, on the helper's own session (proxies, CA bundle from the
    environment), with its credentials, host choice (edge/region) and user agent."""
    url = client.get_hostname(
        f"{UPLOAD_HOST}/v1/Services/{service_sid}/Functions/{function_sid}/Versions")
    session = getattr(client.http_client, "session", None) or requests.Session()
    response = session.post(
        url, auth=client.auth, timeout=HTTP_TIMEOUT,
        headers={k: v for k, v in client.get_headers("POST", {}).items()
                 if k != "Content-Type"},  # requests sets the multipart boundary
        data={"Path": path, "Visibility": visibility},
        files={"Content": (path.strip("/") + ".js", code.encode(), "application/javascript")})
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 201 or not isinstance(body, dict) or "sid" not in body:
        raise TwilioRestException(response.status_code, url,
                                  msg=body.get("message", response.reason) if isinstance(
                                      body, dict) else response.reason,
                                  code=body.get("code") if isinstance(body, dict) else None,
                                  method="POST")
    return str(body["sid"])


def _as_rest_error(response: Response) -> TwilioRestException:
    try:
        body = json.loads(response.text)
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    return TwilioRestException(response.status_code, "", msg=body.get("message", ""),
                               code=body.get("code"))


def _tls_reason(exc: BaseException) -> str:
    """What the certificate check said, from under requests' and urllib3's wrappers."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {seen.verify_message}"
        inner = getattr(seen, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((a for a in seen.args if isinstance(a, BaseException)), None)
        seen = inner or seen.__cause__ or seen.__context__
    return _short(exc)


def _host(exc: requests.RequestException) -> str:
    request = exc.request
    url = getattr(request, "url", None) if request is not None else None
    return urlsplit(url).hostname or "Twilio" if url else "Twilio"


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
