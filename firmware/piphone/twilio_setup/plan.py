"""The plan: what the account has, read without changing anything, and what setup would do.

``make_plan`` only reads (GET requests); ``Plan.steps()`` says what ``apply`` will create,
update or reuse, and a dry run prints exactly that and stops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from . import function
from .files import LocalFiles
from .rest import SetupError, connect, talking_to_twilio

NUMBERS_SHOWN = 20  # numbers named in an error, at most


@dataclass(frozen=True)
class Step:
    verb: str  # create | update | reuse | deploy | write | note
    what: str


@dataclass(frozen=True)
class Number:
    phone_number: str  # +E.164: the caller ID of calls the phone places
    sid: str | None  # PN...; None: a verified caller ID, not a number of the account
    voice_url: str | None = None
    voice_method: str | None = None
    voice_application_sid: str | None = None

    def needs(self, url: str | None) -> bool:
        """Whether its incoming calls must be pointed at ``url`` (None: not known yet)."""
        return self.sid is not None and (
            url is None or self.voice_url != url or self.voice_method != "POST"
            or bool(self.voice_application_sid))


@dataclass(frozen=True)
class App:
    sid: str | None  # AP...; None: to be created
    voice_url: str | None = None
    voice_method: str | None = None

    def needs(self, url: str | None) -> bool:
        return url is None or self.voice_url != url or self.voice_method != "POST"


@dataclass(frozen=True)
class Key:
    reuse_sid: str | None  # the key secrets.toml holds the secret of; None: make a new one
    leftovers: tuple[str, ...]  # other keys of this phone's name (setup never deletes keys)
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Functions:
    """The phone's Serverless service and what is deployed in it."""

    service_sid: str | None
    environment_sid: str | None = None
    domain_name: str | None = None
    function_sid: str | None = None
    deployed: bool = False  # the environment's build holds this exact code, protected

    @property
    def url(self) -> str | None:
        return f"https://{self.domain_name}{function.FUNCTION_PATH}" if self.domain_name else None


@dataclass(frozen=True)
class Plan:
    account_sid: str
    account_name: str
    trial: bool
    identity: str
    number: Number
    code: str  # the Function's JavaScript
    functions: Functions
    app: App
    key: Key
    local: LocalFiles

    @property
    def name(self) -> str:
        return function.resource_name(self.identity)

    def account_keys(self, api_key_sid: str, twiml_app_sid: str) -> dict[str, str]:
        """The [account] keys setup writes into piphone.toml."""
        return {"identity": self.identity, "account_sid": self.account_sid,
                "api_key_sid": api_key_sid, "twiml_app_sid": twiml_app_sid}

    def steps(self) -> list[Step]:
        fx, url = self.functions, self.functions.url
        service = function.service_name(self.identity)
        steps = []
        if fx.service_sid is None:
            steps.append(Step("create", f"Functions service {service} (no account "
                                        "credentials in it)"))
        else:
            steps.append(Step("reuse", f"Functions service {service} ({fx.service_sid})"))
        if fx.environment_sid is None:
            steps.append(Step("create", f"its environment {function.ENVIRONMENT!r} (Twilio "
                                        "names its domain)"))
        else:
            steps.append(Step("reuse", f"its environment {function.ENVIRONMENT!r}: {url}"))
        what = f"function {function.FUNCTION_PATH}"
        protected = "protected: it answers only requests signed by Twilio"
        if fx.function_sid is None:
            steps.append(Step("create", f"{what} ({protected})"))
        else:
            steps.append(Step("reuse", f"{what} ({fx.function_sid}; {protected})"))
        if fx.deployed:
            steps.append(Step("reuse", "its deployed code (the same as this setup's)"))
        else:
            rings = (f"ring {self.identity} on calls to {self.number.phone_number}, "
                     if self.number.sid else "")
            steps.append(Step("deploy", f"its code: {rings}dial what the phone calls from "
                                        f"{self.number.phone_number} (function version, build, "
                                        "deployment)"))
        target = url or "the function"
        if self.app.sid is None:
            steps.append(Step("create", f"TwiML App {self.name!r}: calls the phone places -> "
                                        f"{target}"))
        elif self.app.needs(url):
            steps.append(Step("update", f"TwiML App {self.name!r} ({self.app.sid}): Voice URL "
                                        f"{target} (was {self.app.voice_url})"))
        else:
            steps.append(Step("reuse", f"TwiML App {self.name!r} ({self.app.sid})"))
        number = self.number
        if number.sid is None:
            steps.append(Step("note", f"{number.phone_number} is a verified caller ID, not a "
                                      "number of the account: calls go out from it, nothing "
                                      "from the phone network rings this phone"))
        elif number.needs(url):
            was = number.voice_url or "nothing"
            if number.voice_application_sid:
                was = f"TwiML App {number.voice_application_sid}"
            steps.append(Step("update", f"number {number.phone_number}: incoming calls -> "
                                        f"{target} (was {was})"))
        else:
            steps.append(Step("reuse", f"number {number.phone_number}: its calls already ring "
                                       "this phone"))
        if self.key.reuse_sid is not None:
            steps.append(Step("reuse", f"API key {self.name!r} ({self.key.reuse_sid}; "
                                       f"{self.local.secrets.name} holds its secret)"))
        else:
            steps.append(Step("create", f"API key {self.name!r} (its secret goes only into "
                                        f"{self.local.secrets})"))
        known = self.account_keys(self.key.reuse_sid or "SK?", self.app.sid or "AP?")
        steps += [Step(verb, what) for verb, what in self.local.actions(known, self.key.secret)]
        return steps

    def describe(self) -> str:
        kind = "trial account" if self.trial else "account"
        lines = [f"Twilio {kind} {self.account_sid} ({self.account_name}); phone "
                 f"{self.identity!r}, number {self.number.phone_number}"]
        lines += [f"  {step.verb:<7} {step.what}" for step in self.steps()]
        return "\n".join(lines)


def make_plan(client: Client, account_sid: str, identity: str, number: str | None,
              local: LocalFiles) -> Plan:
    """Read the account (GET requests only) and decide what to create, update or reuse."""
    with talking_to_twilio(f"read account {account_sid}"):
        account = client.api.v2010.accounts(account_sid).fetch()
    if account.status != "active":
        raise SetupError(f"account {account_sid} is {account.status}, not active: it cannot "
                         "make or take calls")
    chosen = _number(client, account_sid, number)
    code = function.function_code(identity, chosen.phone_number)
    name = " ".join(str(account.friendly_name or "").split())[:64]  # the user's text, bounded
    return Plan(account_sid=account_sid, account_name=name,
                trial=account.type == "Trial", identity=identity, number=chosen, code=code,
                functions=_functions(client, identity, code), app=_app(client, identity, local),
                key=_key(client, account_sid, identity, local), local=local)


def _number(client: Client, account_sid: str, wanted: str | None) -> Number:
    numbers = client.api.v2010.account.incoming_phone_numbers
    if wanted is not None:
        with talking_to_twilio("read the account's phone numbers"):
            owned = [n for n in numbers.list(phone_number=wanted) if n.phone_number == wanted]
        if owned:
            return _owned(owned[0])
        with talking_to_twilio("read the account's verified caller IDs"):
            callers = client.api.v2010.account.outgoing_caller_ids.list(phone_number=wanted)
        if any(c.phone_number == wanted for c in callers):
            return Number(wanted, None)
    with talking_to_twilio("read the account's phone numbers"):
        listed = numbers.list(limit=NUMBERS_SHOWN + 1)
    names = ", ".join(n.phone_number for n in listed[:NUMBERS_SHOWN]) + (
        ", ..." if len(listed) > NUMBERS_SHOWN else "")
    if wanted is not None:
        raise SetupError(f"{wanted} is neither a phone number of account {account_sid} nor one "
                         "of its verified caller IDs (" + (f"its numbers: {names}" if listed
                                                          else "it has no number") + ")")
    if len(listed) == 1:
        return _owned(listed[0])
    if not listed:
        raise SetupError(
            f"account {account_sid} has no phone number: nothing could ring the phone and it "
            "would have no caller ID to call out with. Buy one (Console > Phone Numbers > "
            "Manage > Buy a number; a trial account gets one) and run this again, or, for a "
            "phone that only calls out, give --number with one of the account's verified "
            "caller IDs")
    count = len(listed) if len(listed) <= NUMBERS_SHOWN else "many"
    raise SetupError(f"account {account_sid} has {count} phone numbers: choose this phone's "
                     f"with --number ({names})")


def _owned(record) -> Number:
    if record.trunk_sid:
        raise SetupError(f"number {record.phone_number} belongs to SIP trunk {record.trunk_sid}: "
                         "its calls go to the trunk, not to a Voice URL; take it off the trunk "
                         "(Console > Elastic SIP Trunking) first")
    return Number(record.phone_number, record.sid, record.voice_url, record.voice_method,
                  record.voice_application_sid or None)


def _functions(client: Client, identity: str, code: str) -> Functions:
    name = function.service_name(identity)
    serverless = client.serverless.v1
    with talking_to_twilio("read the account's Functions services"):
        service = next((s for s in serverless.services.list() if s.unique_name == name), None)
        if service is None:
            return Functions(None)
        this = serverless.services(service.sid)
        env = next((e for e in this.environments.list()
                    if e.unique_name == function.ENVIRONMENT), None)
        fn = next((f for f in this.functions.list()
                   if f.friendly_name == function.FUNCTION_NAME), None)
        deployed = False
        if env is not None and fn is not None and env.build_sid:
            build = this.builds(env.build_sid).fetch()
            for version in build.function_versions or []:
                if (version.get("path"), version.get("function_sid"), version.get(
                        "visibility")) == (function.FUNCTION_PATH, fn.sid, function.VISIBILITY):
                    content = this.functions(fn.sid).function_versions(
                        version["sid"]).function_version_content().fetch().content
                    deployed = content == code
    return Functions(service.sid, env.sid if env else None, env.domain_name if env else None,
                     fn.sid if fn else None, deployed)


def _app(client: Client, identity: str, local: LocalFiles) -> App:
    name = function.resource_name(identity)
    with talking_to_twilio("read the account's TwiML Apps"):
        apps = [a for a in client.api.v2010.account.applications.list(friendly_name=name)
                if a.friendly_name == name]
    if not apps:
        return App(None)
    app = next((a for a in apps if a.sid == local.twiml_app_sid), apps[0])
    return App(app.sid, app.voice_url, app.voice_method)


def _key(client: Client, account_sid: str, identity: str, local: LocalFiles) -> Key:
    """Reuse this phone's key only when secrets.toml holds its secret and Twilio takes it;
    an API key's secret is shown once, when it is made, so any other needs a new key."""
    name = function.resource_name(identity)
    with talking_to_twilio("read the account's API keys"):
        named = [k.sid for k in client.api.v2010.account.keys.list() if k.friendly_name == name]
    reuse = None
    if (local.api_key_sid is not None and local.api_key_sid in named and local.api_key_secret
            and local.account_sid == account_sid
            and _secret_works(account_sid, local.api_key_sid, local.api_key_secret)):
        reuse = local.api_key_sid
    return Key(reuse, tuple(k for k in named if k != reuse),
               local.api_key_secret if reuse else None)


def _secret_works(account_sid: str, key_sid: str, secret: str) -> bool:
    """One GET made with the key itself: does Twilio take this secret?"""
    with talking_to_twilio(f"check API key {key_sid}"):
        try:
            connect(key_sid, secret, account_sid).api.v2010.accounts(account_sid).fetch()
        except TwilioRestException as exc:
            if exc.status == 401:
                return False
            raise
    return True
