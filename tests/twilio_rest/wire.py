"""The stand-in's wire: requests as recorded, Twilio's error shape, HTTP plumbing."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

API, SERVERLESS, UPLOAD = "api.twilio.com", "serverless.twilio.com", "serverless-upload.twilio.com"
HOSTS = (API, SERVERLESS, UPLOAD)
DEMO_VOICE_URL = "https://demo.twilio.com/welcome/voice/"  # a new number's Voice URL
SID = re.compile(r"\b(AC|CA|ZS|ZE|ZH|ZN|ZB|ZD|PN|AP|SK)[0-9a-f]{32}\b")


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
        return self.method, self.host, SID.sub(r"\1*", self.path)


class TwilioError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message




def handler_for(rest: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the helper's session expects

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            host = (self.headers.get("Host") or "").split(":")[0]
            status, payload = rest.handle(self.command, host, self.path, self.headers, body)
            media = isinstance(payload, bytes)  # a recording's audio
            data = payload if media else json.dumps(payload).encode() if status != 204 else b""
            self.send_response(status)
            self.send_header("Content-Type", "audio/x-wav" if media
                             else "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def body_of(content_type: str, body: bytes
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


def basic_auth(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.startswith("Basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, None
    return user, password


def paging(request: Request, default: int) -> tuple[int, int]:
    try:
        size = int(request.value("PageSize") or default)
        page = int(request.value("Page") or 0)
    except ValueError:
        raise TwilioError(400, 20001, "Invalid paging parameters") from None
    if not 1 <= size <= 1000 or page < 0:
        raise TwilioError(400, 20001, "Invalid paging parameters")
    return size, page


def number_matches(pattern: str | None, number: str) -> bool:
    """Twilio's PhoneNumber filter: a part of the number, ``*`` for any digit."""
    if pattern is None:
        return True
    return re.search(re.escape(pattern).replace(r"\*", "[0-9]"), number) is not None


def required(request: Request, name: str) -> str:
    value = request.value(name)
    if value is None or value == "":
        raise TwilioError(400, 20001, f"Missing required parameter {name} in the post body")
    return value


def not_found(path: str) -> TwilioError:
    return TwilioError(404, 20404, f"The requested resource {path} was not found")


def raise_(exc: Exception) -> Any:
    raise exc


def rfc2822() -> str:
    return formatdate(time.time(), usegmt=True).replace("GMT", "+0000")


def iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def shapes(requests: Iterable[Request]) -> list[tuple[str, str, str]]:
    return [r.shape for r in requests]
