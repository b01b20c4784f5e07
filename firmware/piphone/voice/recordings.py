"""Voicemail on Twilio: the recordings the phone's Function made (twilio_setup/function.py),
read through Twilio's REST API with the phone's API key.

The same interface as voice/voicemail.py's ``MailboxClient`` (the local exchange's), so the
appliance plays either. Listing and deleting go through the official ``twilio`` helper (in a
thread: it is blocking HTTP); the audio is the recording's ``.wav`` media, fetched with
``requests`` (the helper's own HTTP client, which hands back text only), with the same key.
A recording is this phone's voicemail when Twilio's ``<Record>`` made it (source
``RecordVerb``) on a call whose ``<Dial>`` rang this phone's identity (a child call to
``client:IDENTITY``): one account may hold several phones. Twilio keeps no "heard" flag, so
the phone keeps the ids it played to the end in ``heard_path`` (its state directory; None:
in memory only), pruned to the recordings that still exist.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import ssl
from pathlib import Path
from typing import Any

from ..logsafe import text
from ..pcm import Samples
from .voicemail import MAX_AUDIO_BYTES, TIMEOUT, VoicemailError, VoicemailMessage, wav_samples

log = logging.getLogger(__name__)

API = "https://api.twilio.com/2010-04-01"
MAX_LISTED = 100  # the newest recordings looked at
RECORD_VERB = "RecordVerb"


class TwilioRecordings:
    """``url`` is there for the interface: Twilio's API has one fixed address."""

    def __init__(self, account_sid: str, api_key_sid: str, api_key_secret: str, identity: str,
                 heard_path: Path | None = None) -> None:
        self.url: str | None = API
        self._account = account_sid
        self._key = (api_key_sid, api_key_secret)
        self._identity = identity
        self._heard_path = heard_path
        self._heard: set[str] = self._load_heard()
        self._callers: dict[str, str] = {}  # CallSid -> its caller ("" when not this phone's)

    def __repr__(self) -> str:  # never the secret
        return f"<TwilioRecordings {self._identity} key {self._key[0]}>"

    async def list(self) -> list[VoicemailMessage]:
        found: list[VoicemailMessage] = await self._in_thread(self._list)
        return found

    async def audio(self, sid: str) -> Samples:
        data: bytes = await self._in_thread(self._audio, self._checked(sid))
        return wav_samples(data)

    async def heard(self, sid: str) -> None:
        self._heard.add(self._checked(sid))
        self._save_heard()

    async def delete(self, sid: str) -> None:
        await self._in_thread(lambda: self._client().recordings(self._checked(sid)).delete())
        self._heard.discard(sid)
        self._save_heard()

    # --- in the worker thread --------------------------------------------------------------
    async def _in_thread(self, work: Any, *args: Any) -> Any:
        try:
            return await asyncio.wait_for(asyncio.to_thread(work, *args), TIMEOUT + 5)
        except TimeoutError:
            raise VoicemailError(f"Twilio did not answer within {TIMEOUT:.0f} s") from None
        except VoicemailError:
            raise
        except Exception as exc:  # the helper's TwilioRestException, requests' OSErrors
            status = getattr(exc, "status", None)
            raise VoicemailError(f"Twilio's API: {f'HTTP {status}: ' if status else ''}"
                                 f"{text(getattr(exc, 'msg', None) or exc, 200)}") from None

    def _client(self) -> Any:
        # Imported here, in the worker thread: the helper is large, and only this uses it.
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        http = TwilioHttpClient(timeout=TIMEOUT)
        http.session.verify = _trust()
        return Client(self._key[0], self._key[1], self._account, http_client=http)

    def _list(self) -> builtins.list[VoicemailMessage]:
        client = self._client()
        found = []
        for recording in client.recordings.list(limit=MAX_LISTED):  # newest first
            if recording.source != RECORD_VERB or not recording.call_sid:
                continue
            caller = self._caller_of(client, recording.call_sid)
            if not caller:
                continue
            created = recording.date_created
            found.append(VoicemailMessage(
                sid=str(recording.sid), caller=caller[:128],
                received=created.timestamp() if created is not None else 0.0,
                seconds=float(recording.duration or 0), heard=recording.sid in self._heard))
        if self._heard - {m.sid for m in found}:  # deleted elsewhere: forget them
            self._heard &= {m.sid for m in found}
            self._save_heard()
        return sorted(found, key=lambda m: m.received, reverse=True)

    def _caller_of(self, client: Any, call_sid: str) -> str:
        """Who called, if the call rang this phone ("" if it did not)."""
        if call_sid not in self._callers:
            rang = client.calls.list(parent_call_sid=call_sid, limit=20)
            mine = any(c.to == f"client:{self._identity}" for c in rang)
            # (the helper names the call's "from" _from)
            self._callers[call_sid] = (client.calls(call_sid).fetch()._from or "unknown"
                                       ) if mine else ""
        return self._callers[call_sid]

    def _audio(self, sid: str) -> bytes:
        import requests

        url = f"{API}/Accounts/{self._account}/Recordings/{sid}.wav"
        with requests.get(url, auth=self._key, timeout=TIMEOUT, verify=_trust(),
                          stream=True) as response:
            if response.status_code != 200:
                raise VoicemailError(f"Twilio's API: HTTP {response.status_code} for the "
                                     "recording's audio")
            data = response.raw.read(MAX_AUDIO_BYTES + 1, decode_content=True)
        if len(data) > MAX_AUDIO_BYTES:
            raise VoicemailError(f"a recording over {MAX_AUDIO_BYTES} bytes")
        return bytes(data)

    @staticmethod
    def _checked(sid: str) -> str:
        if not (sid.startswith("RE") and sid[2:].isalnum() and len(sid) == 34):
            raise VoicemailError(f"not a recording id: {text(sid, 64)}")
        return sid

    # --- what was heard ---------------------------------------------------------------------
    def _load_heard(self) -> set[str]:
        if self._heard_path is None or not self._heard_path.is_file():
            return set()
        try:
            sids = json.loads(self._heard_path.read_text(encoding="utf-8"))
            return {s for s in sids if isinstance(s, str)} if isinstance(sids, list) else set()
        except (OSError, ValueError) as exc:
            log.warning("voicemail: %s unreadable (%s); every message counts as new",
                        self._heard_path, exc)
            return set()

    def _save_heard(self) -> None:
        if self._heard_path is None:
            return
        from ..tomlconfig import write_public

        try:
            write_public(self._heard_path, json.dumps(sorted(self._heard)))
        except OSError as exc:
            log.warning("voicemail: cannot keep what was heard in %s: %s", self._heard_path, exc)


def _trust() -> str | bool:
    """What requests verifies Twilio against: the system's trust store, as signaling does
    (requests would use certifi; REQUESTS_CA_BUNDLE still wins, as requests documents)."""
    paths = ssl.get_default_verify_paths()
    return paths.cafile or paths.capath or True
