"""Carry out a plan: create or update at Twilio only what ``Plan.steps()`` said.

The order lets a run that fails half-way be run again: the Function first (nothing points at
it yet), then the TwiML App and the number that point at it, and the API key last, right
before the files are written, because its secret is shown only once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from twilio.rest import Client

from . import function
from .plan import Plan
from .rest import SetupError, talking_to_twilio, upload_function_version

BUILD_TIMEOUT = 300.0  # seconds a Functions build may take (Twilio's own toolkit waits 5 min)
BUILD_POLL = 1.0  # seconds between looks at the build (as Twilio's docs advise)


@dataclass(frozen=True)
class Applied:
    url: str  # the Function's URL
    twiml_app_sid: str
    api_key_sid: str
    api_key_secret: str = field(repr=False)
    new_key: bool = False


def apply(plan: Plan, client: Client, say: Callable[[str], None]) -> Applied:
    url = _functions(plan, client, say)
    api = client.api.v2010.account
    app_sid = plan.app.sid
    if app_sid is None:
        with talking_to_twilio("create the TwiML App"):
            app_sid = api.applications.create(friendly_name=plan.name, voice_url=url,
                                              voice_method="POST").sid
        say(f"created TwiML App {plan.name!r} ({app_sid})")
    elif plan.app.needs(url):
        with talking_to_twilio(f"update TwiML App {app_sid}"):
            api.applications(app_sid).update(voice_url=url, voice_method="POST")
        say(f"updated TwiML App {plan.name!r} ({app_sid})")
    number = plan.number
    if number.needs(url):
        with talking_to_twilio(f"update number {number.phone_number}"):
            api.incoming_phone_numbers(number.sid).update(
                voice_url=url, voice_method="POST",
                voice_application_sid="")  # an app set on the number would take its calls
        say(f"updated number {number.phone_number}: its calls ring {plan.identity!r}")
    if plan.key.reuse_sid is not None:
        assert plan.key.secret is not None
        return Applied(url, app_sid, plan.key.reuse_sid, plan.key.secret)
    with talking_to_twilio("create an API key"):
        key = api.new_keys.create(friendly_name=plan.name)
    say(f"created API key {plan.name!r} ({key.sid})")
    return Applied(url, app_sid, key.sid, key.secret, new_key=True)


def _functions(plan: Plan, client: Client, say: Callable[[str], None]) -> str:
    """The phone's Function, deployed as planned; its URL."""
    fx, serverless = plan.functions, client.serverless.v1
    service_sid = fx.service_sid
    if service_sid is None:
        with talking_to_twilio("create the Functions service"):
            service_sid = serverless.services.create(
                unique_name=function.service_name(plan.identity),
                friendly_name=plan.name,
                include_credentials=False,  # the Function needs no account credentials
            ).sid
        say(f"created Functions service {function.service_name(plan.identity)} ({service_sid})")
    service = serverless.services(service_sid)
    environment_sid, domain = fx.environment_sid, fx.domain_name
    if environment_sid is None:
        with talking_to_twilio("create the Functions environment"):
            environment = service.environments.create(unique_name=function.ENVIRONMENT)
        environment_sid, domain = environment.sid, environment.domain_name
        say(f"created environment {function.ENVIRONMENT!r} ({environment_sid}): {domain}")
    function_sid = fx.function_sid
    if function_sid is None:
        with talking_to_twilio("create the Function"):
            function_sid = service.functions.create(friendly_name=function.FUNCTION_NAME).sid
        say(f"created function {function.FUNCTION_PATH} ({function_sid})")
    if not fx.deployed:
        with talking_to_twilio("upload the Function's code"):
            version = upload_function_version(client, service_sid, function_sid,
                                              function.FUNCTION_PATH, function.VISIBILITY,
                                              plan.code)
        with talking_to_twilio("build the Function"):
            build = service.builds.create(function_versions=[version])
            say(f"building the Function ({build.sid}) ...")
            _wait_for_build(service, build.sid, service_sid)
        with talking_to_twilio("deploy the Function"):
            deployment = service.environments(environment_sid).deployments.create(
                build_sid=build.sid)
        say(f"deployed the Function ({deployment.sid})")
    return f"https://{domain}{function.FUNCTION_PATH}"


def _wait_for_build(service, build_sid: str, service_sid: str) -> None:
    deadline = time.monotonic() + BUILD_TIMEOUT
    while True:
        status = service.builds(build_sid).build_status().fetch().status
        if status == "completed":
            return
        if status == "failed":
            raise SetupError(f"Twilio could not build the Function (build {build_sid} failed): "
                             f"its logs are under Functions and Assets > Services > "
                             f"{service_sid} in the Console; run this again to retry")
        if time.monotonic() > deadline:
            raise SetupError(f"the Function's build {build_sid} is still {status} after "
                             f"{BUILD_TIMEOUT:.0f} s; run this again later")
        time.sleep(BUILD_POLL)
