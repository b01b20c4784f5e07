"""Transfers on Twilio: the phone asks Twilio's REST API, through the ``twilio`` helper with the
config's API key ([account] account_sid and api_key_sid, secrets.toml's api_key_secret), to
redirect the far party's call to TwiML that ``<Dial>``s the target.

Which call is the far party's (Twilio's Call resource, "parent" and "child" calls): a call the
phone placed is a parent call (the phone's Client leg ran the TwiML App, whose ``<Dial>`` made
the far party a child call), so the far party is the child: the calls listed with
``ParentCallSid`` = the phone's CallSid and ``Status`` in-progress (one, for a ``<Dial>`` of
one number or client). A call the phone took is itself a child (the number's TwiML dialled the
phone), so the far party is its parent: fetching the phone's call gives ``ParentCallSid``.
Redirecting the far party's call takes it out of the ``<Dial>`` that bridged it to the phone;
the phone then hangs its own leg up (Twilio would end it too).

Attended: Twilio bridges two calls only through a conference, so joining the held call and the
consultation is the held party redirected to ``<Dial>`` the consultation's number, and the
phone hanging up both: the consulted party gets a call from the held party at once.

The helper is blocking: each transfer runs in a thread, bounded by HTTP_TIMEOUT per request.
The API key's secret never reaches a message (the helper's errors quote Twilio's answer).

The helper's REST client and ``requests`` are imported at a phone's first transfer on Twilio
(5 MB resident, 3.5 MB of it private, in every phone otherwise), as voice/recordings.py does.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from typing import TYPE_CHECKING

from ..errors import PiphoneError
from ..voice import CallDirection
from .config import AccountConfig
from .ports import PhoneCall
from .transfers import ExchangeTransfer, Transferer

if TYPE_CHECKING:
    from twilio.rest import Client
    from twilio.twiml.voice_response import VoiceResponse

log = logging.getLogger(__name__)

HTTP_TIMEOUT = 15.0  # seconds for one request (the helper waits forever by default)
# What the TwiML App's function dials as a client rather than a number (twilio_setup's).
CLIENT = re.compile(r"client:([A-Za-z0-9_.@+-]{1,121})"
                    r"|([A-Za-z0-9_.@-]*[A-Za-z][A-Za-z0-9_.@-]*)")


class TransferError(PiphoneError):
    """Twilio could not transfer the call; the message says why."""


class TwilioTransfer:
    conferences = False  # a conference on Twilio is TwiML's <Conference>: not done here

    def __init__(self, account_sid: str, api_key_sid: str, api_key_secret: str) -> None:
        self._key = (api_key_sid, api_key_secret, account_sid)

    @classmethod
    def of(cls, account: AccountConfig) -> TwilioTransfer | None:
        """The account's REST API, if the config has its API key (else None: no transfer)."""
        if not (account.account_sid and account.api_key_sid and account.api_key_secret):
            return None
        return cls(account.account_sid, account.api_key_sid, account.api_key_secret)

    @functools.cached_property
    def client(self) -> Client:
        """Twilio's REST client, made (its modules imported) at the first transfer, in the
        transfer's thread: a phone that never transfers never loads it."""
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        return Client(*self._key, http_client=TwilioHttpClient(timeout=HTTP_TIMEOUT))

    async def blind(self, call: PhoneCall, to: str) -> None:
        await asyncio.to_thread(self._redirect, call, to)
        call.disconnect()

    async def join(self, call: PhoneCall, held: PhoneCall, peer: str | None) -> None:
        if not peer:
            raise TransferError("the consultation call has no number to transfer to")
        await asyncio.to_thread(self._redirect, held, peer)
        held.disconnect()
        call.disconnect()

    async def conference(self, call: PhoneCall, held: PhoneCall) -> None:
        raise TransferError("a three-way conference needs the local exchange")

    # --- in a thread ---------------------------------------------------------------------------
    def _redirect(self, call: PhoneCall, to: str) -> None:
        import requests
        from twilio.base.exceptions import TwilioException, TwilioRestException

        try:
            far = self._far_party(call)
            self.client.calls(far).update(twiml=str(dial(to)))
        except TwilioRestException as exc:
            raise TransferError(f"Twilio refused the transfer ({exc.code}): {exc.msg}") from None
        except (TwilioException, requests.RequestException) as exc:
            raise TransferError(f"cannot reach Twilio's REST API: {exc}") from None
        log.info("call %s: far party %s redirected to %s", call.call_sid, far, to)

    def _far_party(self, call: PhoneCall) -> str:
        sid = call.call_sid
        if not sid:
            raise TransferError("the call has no CallSid yet")
        if call.direction is CallDirection.INCOMING:
            parent = self.client.calls(sid).fetch().parent_call_sid
            if not parent:
                raise TransferError(f"call {sid} has no parent call to transfer")
            return str(parent)
        children = self.client.calls.list(parent_call_sid=sid, status="in-progress", limit=2)
        if len(children) != 1:
            raise TransferError(f"call {sid} has {len(children)} calls in progress under it, "
                                "not one far party")
        return str(children[0].sid)


def transferer_for(account: AccountConfig) -> Transferer | None:
    """Who carries the phone's transfers out: the local exchange (a signaling_url), else
    Twilio's REST API with the account's API key; None with a fixed token on Twilio."""
    return ExchangeTransfer() if account.signaling_url else TwilioTransfer.of(account)


def dial(to: str) -> VoiceResponse:
    """TwiML that dials ``to`` as the TwiML App's function does: ``client:NAME`` or a name is
    a client, anything else a number (00 for +)."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    client = CLIENT.fullmatch(to.strip())
    if client:
        response.dial().client(client.group(1) or client.group(2))
    else:
        response.dial().number(re.sub(r"^00", "+", to.strip()))
    return response
