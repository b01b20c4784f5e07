"""The running phone's control socket: JSON lines on a unix socket, for the CLI over ssh.

Requests: ``{"cmd": "status"}``, ``{"cmd": "call", "number": "+1555..."}``, ``{"cmd":
"hangup"}``, ``{"cmd": "answer"}``, ``{"cmd": "mute"}``, ``{"cmd": "hold"}`` (hold or take
back), ``{"cmd": "swap"}`` (call waiting's swap), ``{"cmd": "speaker"}`` (the speaker
button; ``"on": true`` / ``false`` to ask for one side), ``{"cmd": "seen"}`` (the missed calls
are seen), ``{"cmd": "transfer", "number": "...", "attended": false}`` (or ``"complete":
true``: join the held call and the consultation), ``{"cmd": "conference"}`` (the held call
and this one, together), ``{"cmd": "voicemail", "action": "list" | "play" | "next" | "stop" |
"delete", "number": N}`` (voicemail.py). Each gets one line back: ``{"ok":
true, ...}`` or ``{"ok": false, "error": "..."}``. A bad line gets an error reply and the
connection stays usable; nothing a client sends can raise into the loop. The socket is 0660:
the piphone group may use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import PiphoneError

log = logging.getLogger(__name__)

DEFAULT_SOCKET = Path("/run/piphone/control.sock")  # systemd's RuntimeDirectory=piphone
MAX_LINE = 4096  # bytes: requests are tiny
NUMBER = re.compile(r"[0-9A-Za-z+*#:._@-]{1,64}")  # digits, +E.164, client:NAME, lines
COMMANDS = ("status", "call", "hangup", "answer", "mute", "speaker", "seen", "hold", "swap",
            "transfer", "conference", "voicemail")
VOICEMAIL_ACTIONS = ("list", "play", "next", "delete", "stop")


def socket_path() -> Path:
    return Path(os.environ.get("PIPHONE_CONTROL_SOCKET") or DEFAULT_SOCKET)


class ControlError(PiphoneError):
    """The request cannot be done; its message goes back to the client."""


class ControlServer:
    """Serves ``handle(request) -> dict`` on a unix socket."""

    def __init__(self, path: Path, handle: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.path = path
        self._handle = handle
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if self.path.is_socket():
                self.path.unlink()  # a stale socket of a previous run
        self._server = await asyncio.start_unix_server(self._client, path=str(self.path),
                                                       limit=MAX_LINE)
        os.chmod(self.path, 0o660)
        log.info("control socket on %s", self.path)

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    writer.write(_encode({"ok": False, "error": "request too long"}))
                    break
                if not line:
                    break
                writer.write(_encode(self.answer(line)))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def answer(self, line: bytes) -> dict[str, Any]:
        """One request line -> one reply (never raises)."""
        try:
            request = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return {"ok": False, "error": f"not JSON: {exc}"}
        try:
            request = check(request)
            reply = self._handle(request)
        except ControlError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            log.exception("control request %r failed", request)
            return {"ok": False, "error": f"internal error: {exc}"}
        return {"ok": True, **reply}


def check(request: Any) -> dict[str, Any]:
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        raise ControlError('a request is an object with a "cmd"')
    cmd = request["cmd"]
    if cmd not in COMMANDS:
        raise ControlError(f"unknown cmd {cmd!r} (one of {', '.join(COMMANDS)})")
    if cmd == "call":
        number = request.get("number")
        if not isinstance(number, str) or not NUMBER.fullmatch(number):
            raise ControlError("call needs a number: digits, +E.164, client:NAME or a line")
    if cmd == "transfer":
        _check_transfer(request)
    if cmd == "speaker" and not isinstance(request.get("on", False), bool):
        raise ControlError('speaker takes "on": true or false (or nothing: the button)')
    if cmd == "voicemail" and (request.get("action", "list") not in VOICEMAIL_ACTIONS or (
            request.get("action") == "delete" and (type(request.get("number")) is not int))):
        raise ControlError(f"voicemail takes an action ({', '.join(VOICEMAIL_ACTIONS)}); "
                           'delete takes a "number" (1: the newest)')
    return request


def _check_transfer(request: dict[str, Any]) -> None:
    number, complete = request.get("number"), request.get("complete", False)
    if not isinstance(request.get("attended", False), bool) or not isinstance(complete, bool):
        raise ControlError('transfer takes "attended" and "complete" as true or false')
    if complete == (number is not None) or complete and request.get("attended"):
        raise ControlError('transfer takes a "number" (and "attended") or "complete": true')
    if number is not None and (not isinstance(number, str) or not NUMBER.fullmatch(number)):
        raise ControlError("transfer needs a number: digits, +E.164, client:NAME")


def _encode(reply: dict[str, Any]) -> bytes:
    return (json.dumps(reply, default=str) + "\n").encode()


def request(cmd: str, path: Path | None = None, timeout: float = 5.0, **fields: Any
            ) -> dict[str, Any]:
    """The CLI's side: send one request to the running service, return its reply."""
    path = path or socket_path()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except FileNotFoundError:
            raise PiphoneError(f"no piphone service is running (no control socket {path})"
                               ) from None
        except PermissionError:
            raise PiphoneError(f"{path}: permission denied (join the piphone group)") from None
        except ConnectionRefusedError:
            raise PiphoneError(f"no piphone service is running ({path} is stale)") from None
        sock.sendall(_encode({"cmd": cmd, **fields}))
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise PiphoneError("the service closed the control connection")
            data += chunk
    reply = json.loads(data)
    if not isinstance(reply, dict):
        raise PiphoneError(f"the service replied with {type(reply).__name__}, not an object")
    return reply
