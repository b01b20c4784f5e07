"""The stand-in's api.twilio.com (2010-04-01): the account, its numbers, verified caller IDs,
API keys and TwiML Apps."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

from .wire import (
    DEMO_VOICE_URL,
    Request,
    TwilioError,
    new_sid,
    not_found,
    number_matches,
    paging,
    raise_,
    rfc2822,
)


class Api2010:
    """Mixed into TwilioRest, whose state (numbers, keys, applications, ...) it serves."""

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
                          "date_created": rfc2822(), "date_updated": rfc2822()}
        return self.keys[sid]

    def _v2010(self, rest: str) -> dict:
        return {"account_sid": self.account_sid, "api_version": "2010-04-01",
                "date_created": rfc2822(), "date_updated": rfc2822(),
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/{rest}.json"}

    def _account(self, request: Request, account_sid: str) -> None:
        if account_sid != self.account_sid:
            raise not_found(request.path)

    def _get_account(self, request: Request, account_sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        return 200, {"sid": self.account_sid,
                     "owner_account_sid": self.account_sid, "auth_token": self.auth_token,
                     "friendly_name": "My first Twilio account", "status": "active",
                     "type": "Trial" if self.trial else "Full", "date_created": rfc2822(),
                     "date_updated": rfc2822(),
                     "uri": f"/2010-04-01/Accounts/{self.account_sid}.json"}

    def _list_numbers(self, request: Request, account_sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        records = [n for n in self.numbers.values()
                   if number_matches(request.value("PhoneNumber"), n["phone_number"])]
        return 200, self._v2010_page(request, "incoming_phone_numbers", records)

    def _update_number(self, request: Request, account_sid: str, sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        number = self.numbers.get(sid) or raise_(not_found(request.path))
        for name, key in (("VoiceUrl", "voice_url"), ("VoiceMethod", "voice_method"),
                          ("VoiceApplicationSid", "voice_application_sid")):
            if request.value(name) is not None:
                number[key] = request.value(name)
        if number["voice_method"] not in ("GET", "POST"):
            raise TwilioError(400, 21207, "VoiceMethod is not valid")
        number["date_updated"] = rfc2822()
        return 200, number

    def _list_caller_ids(self, request: Request, account_sid: str) -> tuple[int, dict]:
        self._account(request, account_sid)
        records = [c for c in self.caller_ids.values()
                   if number_matches(request.value("PhoneNumber"), c["phone_number"])]
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
        app = self.applications.get(sid) or raise_(not_found(request.path))
        for name, key in (("FriendlyName", "friendly_name"), ("VoiceUrl", "voice_url"),
                          ("VoiceMethod", "voice_method")):
            if request.value(name) is not None:
                app[key] = request.value(name)
        app["date_updated"] = rfc2822()
        return 200, app

    def _v2010_page(self, request: Request, key: str, records: list[dict]) -> dict:
        size, page = paging(request, self.page_size)
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

