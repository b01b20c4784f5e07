"""Voicemail over HTTP, on the event gateway's server (events.py): a phone fetches its messages.

``GET /v1/Voicemail`` lists the caller's own mailbox, newest first; ``GET /v1/Voicemail/{sid}``
is one message as a WAV file; ``POST /v1/Voicemail/{sid}/Heard`` marks it heard (the phone
played it to the end); ``DELETE /v1/Voicemail/{sid}`` deletes it. Every request carries the
access token in ``X-Twilio-Token`` (as feedback does), and the mailbox is always the token's
identity's: a message of someone else's is "no message" (404), as one that does not exist, so
nobody learns which ids exist. A change is told to the owner's devices (the ``voicemail``
frame). One identity may make PER_MINUTE requests a minute (429 beyond).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Callable

from aiohttp import web

from ..logsafe import text
from ..voice.errors import TwilioError
from .auth import Grant
from .limits import Window
from .mailbox import Mailboxes, Message
from .voicemail import Voicemail

log = logging.getLogger(__name__)

PATH = "/v1/Voicemail"
PER_MINUTE = 120  # requests one identity may make a minute (a phone makes a few per message)
MAX_CALLERS = 1024  # identities whose rate is remembered (least recent forgotten)


class MailboxApi:
    def __init__(self, verify: Callable[[object], Grant], voicemail: Voicemail) -> None:
        self._verify = verify
        self.voicemail = voicemail
        self._windows: collections.OrderedDict[str, Window] = collections.OrderedDict()

    def add_to(self, app: web.Application) -> None:
        app.router.add_get(PATH, self._list)
        app.router.add_get(PATH + "/{sid}", self._audio)
        app.router.add_post(PATH + "/{sid}/Heard", self._heard)
        app.router.add_delete(PATH + "/{sid}", self._delete)

    def _identity(self, request: web.Request) -> str:
        if self.voicemail.mailboxes is None:
            raise _error(404, 31000, "voicemail is off at this exchange")
        try:
            identity = self._verify(request.headers.get("X-Twilio-Token")).identity
        except TwilioError as exc:
            raise _error(401, exc.code, text(exc.message)) from None
        window = self._windows.pop(identity, None) or Window(PER_MINUTE)
        self._windows[identity] = window  # the most recent last
        while len(self._windows) > MAX_CALLERS:
            self._windows.popitem(last=False)
        if not window.add():
            raise _error(429, 31206, f"over {PER_MINUTE} voicemail requests a minute")
        return identity

    async def _list(self, request: web.Request) -> web.Response:
        identity = self._identity(request)
        assert self.voicemail.mailboxes is not None
        messages = self.voicemail.mailboxes.messages(identity)
        return web.json_response({"messages": [
            {"sid": m.sid, "from": m.caller, "received": m.received, "seconds": m.seconds,
             "heard": m.heard} for m in messages]})

    def _message(self, request: web.Request) -> tuple[str, Mailboxes, Message]:
        """The token's identity, the mailboxes and its message the path names (404 if it is
        not one of that identity's)."""
        identity = self._identity(request)
        mailboxes = self.voicemail.mailboxes
        assert mailboxes is not None
        message = mailboxes.find(identity, request.match_info["sid"])
        if message is None:
            raise _error(404, 31000, "no such message of yours")
        return identity, mailboxes, message

    async def _audio(self, request: web.Request) -> web.StreamResponse:
        identity, mailboxes, message = self._message(request)
        # a file of up to a few MB: read off the loop
        audio = await asyncio.to_thread(mailboxes.audio_path(identity, message).read_bytes)
        return web.Response(body=audio, content_type="audio/wav")

    async def _heard(self, request: web.Request) -> web.Response:
        identity, mailboxes, message = self._message(request)
        if not message.heard:
            mailboxes.mark_heard(identity, message)
            self.voicemail.notify(identity)
        return web.json_response({"heard": message.sid})

    async def _delete(self, request: web.Request) -> web.Response:
        identity, mailboxes, message = self._message(request)
        mailboxes.delete(identity, message)
        log.info("voicemail: %s deleted a message", text(identity, 64))
        self.voicemail.notify(identity)
        return web.json_response({"deleted": message.sid})


def _error(status: int, code: int, message: str) -> web.HTTPException:
    """An answer in the gateway's shape ({"code", "message"}), raised."""
    kinds: dict[int, type[web.HTTPException]] = {401: web.HTTPUnauthorized,
                                                 404: web.HTTPNotFound,
                                                 429: web.HTTPTooManyRequests}
    return kinds[status](text=json.dumps({"code": code, "message": message}),
                         content_type="application/json")
