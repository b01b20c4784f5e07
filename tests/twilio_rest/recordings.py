"""The stand-in's recordings and calls (api.twilio.com 2010-04-01): what the phone's Function
leaves when it records a voicemail (twilio_setup/function.py), as the REST API shows it: the
parent call to the number, its child call that rang ``client:IDENTITY``, and the recording
(source RecordVerb) with its ``.wav`` media."""

from __future__ import annotations

from email.utils import formatdate

from .wire import Request, new_sid, not_found


class Recordings:
    """Mixed into TwilioRest (its ``recordings``, ``calls`` and ``media``)."""

    def add_voicemail(self, caller: str, identity: str, wav: bytes, *, when: float,
                      source: str = "RecordVerb") -> str:
        """A message ``caller`` left for ``identity``'s phone at ``when``; its RE sid."""
        parent, child, sid = new_sid("CA"), new_sid("CA"), new_sid("RE")
        self.calls[parent] = self._call(parent, caller, "+15551230001", None)
        self.calls[child] = self._call(child, "+15551230001", f"client:{identity}", parent)
        seconds = (len(wav) - 44) // (2 * 8000)
        self.recordings[sid] = {
            **self._v2010(f"Recordings/{sid}"), "sid": sid, "call_sid": parent,
            "date_created": formatdate(when, usegmt=True).replace("GMT", "+0000"),
            "duration": str(seconds), "source": source, "status": "completed", "channels": 1,
            "conference_sid": None, "price": None, "price_unit": "USD", "error_code": None,
            "start_time": None, "encryption_details": None, "subresource_uris": {},
            "media_url": f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}"
                         f"/Recordings/{sid}"}
        self.media[sid] = wav
        return sid

    def _call(self, sid: str, from_: str, to: str, parent: str | None) -> dict:
        return {**self._v2010(f"Calls/{sid}"), "sid": sid, "from": from_, "to": to,
                "parent_call_sid": parent, "status": "completed", "direction": "inbound"}

    def _list_recordings(self, request: Request, account_sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        newest = sorted(self.recordings.values(), key=self._when, reverse=True)
        return 200, self._v2010_page(request, "recordings", newest)

    @staticmethod
    def _when(recording: dict) -> float:
        from email.utils import parsedate_to_datetime

        return parsedate_to_datetime(recording["date_created"]).timestamp()

    def _get_media(self, request: Request, account_sid: str, sid: str) -> tuple[int, bytes]:
        self._account(request, account_sid)
        if sid not in self.media:
            raise not_found(request.path)
        return 200, self.media[sid]

    def _delete_recording(self, request: Request, account_sid: str, sid: str
                          ) -> tuple[int, dict]:
        self._account(request, account_sid)
        if self.recordings.pop(sid, None) is None:
            raise not_found(request.path)
        self.media.pop(sid, None)
        return 204, {}

    def _list_calls(self, request: Request, account_sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        parent = request.value("ParentCallSid")
        calls = [c for c in self.calls.values()
                 if parent is None or c["parent_call_sid"] == parent]
        return 200, self._v2010_page(request, "calls", calls)

    def _get_call(self, request: Request, account_sid: str, sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        if sid not in self.calls:
            raise not_found(request.path)
        return 200, self.calls[sid]
