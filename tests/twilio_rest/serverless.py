"""The stand-in's serverless.twilio.com (v1) and serverless-upload.twilio.com: services,
environments, functions, versions (uploaded as files), builds and deployments."""

from __future__ import annotations

import json
import re
import secrets
from urllib.parse import urlencode

from .wire import SERVERLESS, Request, TwilioError, iso, new_sid, not_found, paging, required

DEFAULT_DEPENDENCIES = [{"name": "twilio", "version": "5.0.3"},
                        {"name": "@twilio/runtime-handler", "version": "2.0.1"}]


class Serverless:
    """Mixed into TwilioRest, whose state (services, environments, ...) it serves."""

    def _service(self, request: Request, ref: str) -> dict:
        for service in self.services.values():
            if ref in (service["sid"], service["unique_name"]):
                return service
        raise not_found(request.path)

    def _v1(self, path: str) -> dict:
        now = iso()
        return {"account_sid": self.account_sid, "date_created": now, "date_updated": now,
                "url": f"https://{SERVERLESS}/v1/{path}"}

    def _list_services(self, request: Request) -> tuple[int, dict]:
        return 200, self._v1_page(request, "services", list(self.services.values()))

    def _create_service(self, request: Request) -> tuple[int, dict]:
        unique = required(request, "UniqueName")
        friendly = required(request, "FriendlyName")
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
        unique = required(request, "UniqueName")
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
            "service_sid": service["sid"], "friendly_name": required(request, "FriendlyName"),
            "links": {}}
        return 201, self.functions[sid]

    def _upload_version(self, request: Request, ref: str, function_sid: str
                        ) -> tuple[int, dict]:
        service = self._service(request, ref)
        fn = self.functions.get(function_sid)
        if fn is None or fn["service_sid"] != service["sid"]:
            raise not_found(request.path)
        path = required(request, "Path")
        visibility = required(request, "Visibility")
        if visibility not in ("public", "protected", "private"):
            raise TwilioError(400, 20001, "Visibility must be public, protected or private")
        if "Content" not in request.files:
            raise TwilioError(400, 20001, "Missing required parameter Content")
        sid = new_sid("ZN")
        self.versions[sid] = {
            "sid": sid, "account_sid": self.account_sid, "service_sid": service["sid"],
            "function_sid": function_sid, "path": path if path.startswith("/") else "/" + path,
            "visibility": visibility, "date_created": iso(),
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
            raise not_found(request.path)
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
            raise not_found(request.path)
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
            raise not_found(request.path)
        build = self.builds.get(required(request, "BuildSid"))
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
        size, page = paging(request, self.page_size)
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


