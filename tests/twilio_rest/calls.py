"""The stand-in's Calls (api.twilio.com 2010-04-01): calls going on, with their parent calls,
listed (``ParentCallSid``, ``Status`` filters), fetched, and updated (``Twiml``, ``Url``,
``Status``) as a phone's transfer does (appliance/twilio_transfer.py). Each update is kept
in the call's ``updates`` for the test to read."""

from __future__ import annotations

from .wire import Request, TwilioError, new_sid, not_found, raise_, rfc2822

STATUSES = ("queued", "ringing", "in-progress", "canceled", "completed", "failed", "busy",
            "no-answer")


class Calls:
    """Mixed into TwilioRest, whose ``calls`` (sid -> record) it serves."""

    def add_call(self, *, parent: str | None = None, direction: str = "outbound-dial",
                 status: str = "in-progress", to: str = "+15551230002",
                 frm: str = "+15551230001") -> dict:
        sid = new_sid("CA")
        self.calls[sid] = {
            **self._v2010(f"Calls/{sid}"), "sid": sid, "parent_call_sid": parent,
            "direction": direction, "status": status, "to": to, "from": frm,
            "start_time": rfc2822(), "end_time": None, "duration": None, "price": None,
            "answered_by": None, "caller_name": None, "forwarded_from": None,
            "phone_number_sid": None, "queue_time": "0", "trunk_sid": None, "group_sid": None,
            "subresource_uris": {}, "updates": []}
        return self.calls[sid]

    def _list_calls(self, request: Request, account_sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        parent, status = request.value("ParentCallSid"), request.value("Status")
        records = [c for c in self.calls.values()
                   if (parent is None or c["parent_call_sid"] == parent)
                   and (status is None or c["status"] == status)]
        return 200, self._v2010_page(request, "calls", records)

    def _get_call(self, request: Request, account_sid: str, sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        return 200, self.calls.get(sid) or raise_(not_found(request.path))

    def _update_call(self, request: Request, account_sid: str, sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        call = self.calls.get(sid) or raise_(not_found(request.path))
        if call["status"] != "in-progress":  # Twilio's answer for a call that is not
            raise TwilioError(400, 21220, "Call is not in-progress. Cannot redirect.")
        update = {k: request.value(k) for k in ("Twiml", "Url", "Method", "Status")
                  if request.value(k) is not None}
        if not update:
            raise TwilioError(400, 21218, "Invalid update: no Twiml, Url or Status")
        call["updates"].append(update)
        if update.get("Status") == "completed":
            call["status"] = "completed"
        return 200, call
