"""`piphone twilio setup` as a user runs it (a real process, credentials from the environment or
typed on a terminal) against a stand-in of Twilio's REST API under its real host names, over
TLS that only the test CA vouches for (tests/twilio_rest.py)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import jwt
import pytest

from piphone.appliance import config as appliance_config
from piphone.twilio_setup import function

from ..hostsns import with_hosts
from ..ptyscreen import Screen
from ..tlscert import TestCA
from ..twilio_rest import API, HOSTS, SERVERLESS, UPLOAD, TwilioRest, shapes

pytestmark = pytest.mark.net
ROOT = Path(__file__).resolve().parents[2]
NUMBER = "+15551230001"


@pytest.fixture
def rest(tmp_path):
    with TwilioRest(tmp_path) as stand_in:
        yield stand_in


def config_of(tmp_path: Path) -> Path:
    return tmp_path / "etc" / "piphone" / "piphone.toml"


def argv(tmp_path: Path, *args: str) -> list[str]:
    return with_hosts(tmp_path, HOSTS, [sys.executable, "-m", "piphone", "twilio", "setup",
                                        "--config", str(config_of(tmp_path)), *args])


def setup(rest: TwilioRest, tmp_path: Path, *args: str, **env: str
          ) -> subprocess.CompletedProcess:
    env = {"TWILIO_ACCOUNT_SID": rest.account_sid, "TWILIO_AUTH_TOKEN": rest.auth_token,
           **env}
    done = subprocess.run(argv(tmp_path, *args), env=rest.env(**env), capture_output=True,
                          text=True, timeout=90, stdin=subprocess.DEVNULL)
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out
    for secret in (rest.auth_token, *rest.key_secrets.values()):
        assert secret not in out  # never printed, whatever happens
    return done


def test_first_run_creates_what_a_desk_phone_needs_and_the_config_works(rest, tmp_path):
    number = rest.add_number(NUMBER)
    done = setup(rest, tmp_path, "--identity", "alice")
    assert done.returncode == 0, done.stdout + done.stderr

    (service,) = rest.services.values()
    (environment,) = rest.environments.values()
    (version,) = rest.versions.values()
    (build,) = rest.builds.values()
    (app,) = rest.applications.values()
    (key_sid,) = rest.keys
    url = f"https://{environment['domain_name']}/call"
    assert environment["domain_name"].startswith("piphone-alice-")
    writes = rest.writes()
    assert [(*r.shape, r.form) for r in writes] == [
        ("POST", SERVERLESS, "/v1/Services", {
            "UniqueName": ["piphone-alice"], "FriendlyName": ["piphone alice"],
            "IncludeCredentials": ["false"]}),
        ("POST", SERVERLESS, "/v1/Services/ZS*/Environments", {"UniqueName": ["phone"]}),
        ("POST", SERVERLESS, "/v1/Services/ZS*/Functions", {"FriendlyName": ["call"]}),
        ("POST", UPLOAD, "/v1/Services/ZS*/Functions/ZH*/Versions", {
            "Path": ["/call"], "Visibility": ["protected"]}),
        ("POST", SERVERLESS, "/v1/Services/ZS*/Builds", {"FunctionVersions": [version["sid"]]}),
        ("POST", SERVERLESS, "/v1/Services/ZS*/Environments/ZE*/Deployments", {
            "BuildSid": [build["sid"]]}),
        ("POST", API, "/2010-04-01/Accounts/AC*/Applications.json", {
            "FriendlyName": ["piphone alice"], "VoiceUrl": [url], "VoiceMethod": ["POST"]}),
        ("POST", API, "/2010-04-01/Accounts/AC*/IncomingPhoneNumbers/PN*.json", {
            "VoiceUrl": [url], "VoiceMethod": ["POST"], "VoiceApplicationSid": [""]}),
        ("POST", API, "/2010-04-01/Accounts/AC*/Keys.json", {"FriendlyName": ["piphone alice"]}),
    ]
    assert writes[1].path.startswith(f"/v1/Services/{service['sid']}/")
    assert writes[7].path.endswith(f"/IncomingPhoneNumbers/{number['sid']}.json")
    # The Function's code, uploaded as a file, protected, deployed in the phone's environment.
    name, content_type, code = writes[3].files["Content"]
    assert (name, content_type) == ("call.js", "application/javascript")
    assert code.decode() == function.function_code("alice", NUMBER)
    assert environment["build_sid"] == build["sid"] and build["status"] == "completed"
    assert service["include_credentials"] is False
    assert app["voice_url"] == url and number["voice_url"] == url
    assert all(r.user == rest.account_sid for r in rest.requests)  # the account's credentials

    # The files: a config that loads as the phone loads it, and mints tokens Twilio takes.
    config = config_of(tmp_path)
    secrets = config.parent / "secrets.toml"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o644
    account = appliance_config.load(config).account
    assert (account.identity, account.account_sid, account.api_key_sid, account.twiml_app_sid,
            account.signaling_url) == ("alice", rest.account_sid, key_sid, app["sid"], None)
    claims = jwt.decode(account.access_token(), rest.key_secrets[key_sid], algorithms=["HS256"])
    assert claims["iss"] == key_sid and claims["sub"] == rest.account_sid
    assert claims["grants"] == {"identity": "alice", "voice": {
        "incoming": {"allow": True}, "outgoing": {"application_sid": app["sid"]}}}

    # It ran `piphone check` on them; the same check, run by hand, passes once a headset is
    # configured (this machine has no sound card).
    assert f"$ piphone check --config {config}" in done.stdout
    assert f"config: {config} is valid (identity alice" in done.stdout
    assert f"outgoing calls: routed by TwiML App {app['sid']}" in done.stdout
    with config.open("a") as f:
        f.write('\n[audio]\nheadset = "none"\n')
    check = subprocess.run([sys.executable, "-m", "piphone", "check", "--config", str(config)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "headset: none (configured)" in check.stdout


def test_a_second_run_reuses_everything_and_pages_through_lists(rest, tmp_path):
    rest.page_size = 2  # every list of the account spans pages
    for n in range(3):
        rest.add_key(f"laptop {n}")
    rest.add_number(NUMBER)
    assert setup(rest, tmp_path, "--identity", "alice").returncode == 0
    config = config_of(tmp_path)
    with config.open("a") as f:  # the user's own section, kept
        f.write('\n[phone]\ndial_timeout = 2\n')
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in config.parent.iterdir()}
    counts = [len(rest.keys), len(rest.applications), len(rest.services), len(rest.versions),
              len(rest.builds), len(rest.deployments)]
    before = len(rest.requests)

    done = setup(rest, tmp_path)  # the identity now comes from the config
    assert done.returncode == 0, done.stdout + done.stderr
    second = rest.requests[before:]
    assert {r.method for r in second} == {"GET"}  # nothing created, updated or deleted
    assert [len(rest.keys), len(rest.applications), len(rest.services), len(rest.versions),
            len(rest.builds), len(rest.deployments)] == counts
    plan = [line.split()[0] for line in done.stdout.splitlines()[1:10]]
    assert plan == ["reuse"] * 7 + ["keep"] * 2, done.stdout
    assert f"{config} and {config.parent / 'secrets.toml'} were already right" in done.stdout
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in config.parent.iterdir()} == files
    # The key list ran over pages (3 + 1 keys, 2 a page), and the key's secret was tried once.
    assert sum(r.path.endswith("/Keys.json") for r in second) == 2
    (key_sid,) = (sid for sid, key in rest.keys.items() if key["friendly_name"] == "piphone alice")
    assert [r.path for r in second if r.user == key_sid] == [
        f"/2010-04-01/Accounts/{rest.account_sid}.json"]


def test_a_lost_secret_means_a_new_key_and_the_old_one_is_named(rest, tmp_path):
    rest.add_number(NUMBER)
    assert setup(rest, tmp_path, "--identity", "alice").returncode == 0
    (old,) = rest.keys
    secrets = config_of(tmp_path).parent / "secrets.toml"
    secrets.unlink()
    before = len(rest.requests)
    done = setup(rest, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(*r.shape, r.form) for r in rest.requests[before:] if r.method != "GET"] == [
        ("POST", API, "/2010-04-01/Accounts/AC*/Keys.json", {"FriendlyName": ["piphone alice"]})]
    (new,) = set(rest.keys) - {old}
    assert f"API key {old} is also named 'piphone alice' and is not this phone's" in done.stdout
    assert appliance_config.load(config_of(tmp_path)).account.api_key_sid == new
    # A secret Twilio no longer takes (the key's secret edited, or the key remade elsewhere)
    # is not reused either: it costs one GET with the key, answered 401.
    text = secrets.read_text()
    secrets.write_text(text.replace(rest.key_secrets[new], "x" * 32))
    before = len(rest.requests)
    assert setup(rest, tmp_path).returncode == 0
    tried = [r for r in rest.requests[before:] if r.user == new]
    assert [r.status for r in tried] == [401]
    assert len(rest.keys) == 3 and appliance_config.load(config_of(tmp_path)).account.api_key_sid \
        not in (old, new)


def test_dry_run_only_reads_and_writes_nothing(rest, tmp_path):
    rest.add_number(NUMBER)
    done = setup(rest, tmp_path, "--identity", "alice", "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert rest.requests and {r.method for r in rest.requests} == {"GET"}
    assert not (tmp_path / "etc").exists()
    assert not rest.services and not rest.applications and not rest.keys
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:10]] == [
        "create", "create", "create", "deploy", "create", "update", "create", "write", "write"]
    assert "update  number +15551230001: incoming calls -> the function (was " \
           "https://demo.twilio.com/welcome/voice/)" in done.stdout
    assert lines[-1] == "dry run: nothing was changed"
    # After a real run, a dry run says it would reuse everything, and still writes nothing.
    assert setup(rest, tmp_path, "--identity", "alice").returncode == 0
    config = config_of(tmp_path)
    stamp = config.stat().st_mtime_ns
    config.chmod(0o444)  # not even touched: a dry run never opens it for writing
    before = len(rest.requests)
    done = setup(rest, tmp_path, "--dry-run")
    assert {r.method for r in rest.requests[before:]} == {"GET"}
    assert [line.split()[0] for line in done.stdout.splitlines()[1:10]] == ["reuse"] * 7 + [
        "keep"] * 2
    assert config.stat().st_mtime_ns == stamp


def test_clear_errors_and_nothing_changed(rest, tmp_path):
    def fails(*args: str, **env: str) -> str:
        before = len(rest.requests)
        done = setup(rest, tmp_path, *args, **env)
        assert done.returncode == 2, done.stdout + done.stderr
        assert {r.method for r in rest.requests[before:]} <= {"GET"}
        assert not (tmp_path / "etc").exists()
        return done.stderr

    # An Account SID that is not one: said before any request, and not echoed (it may be a
    # token pasted at the wrong place).
    err = fails(TWILIO_ACCOUNT_SID=rest.auth_token)
    assert "piphone: that Account SID is not AC followed by 32 hex digits" in err
    assert not rest.requests
    # A wrong auth token: Twilio's 401 (20003), said as such.
    err = fails(TWILIO_AUTH_TOKEN="0" * 32)
    assert "Twilio refused the Account SID and auth token (HTTP 401, error 20003)" in err
    assert [(r.shape, r.status) for r in rest.requests] == [
        (("GET", API, "/2010-04-01/Accounts/AC*.json"), 401)]
    # No number at all.
    assert f"account {rest.account_sid} has no phone number" in fails("--identity", "a")
    # A number that is not the account's, and several numbers with none chosen.
    rest.add_number(NUMBER)
    rest.add_number("+15551230002")
    err = fails("--number", "+15559990000")
    assert ("+15559990000 is neither a phone number of account " + rest.account_sid +
            " nor one of its verified caller IDs (its numbers: +15551230001, +15551230002)") in err
    assert "has 2 phone numbers: choose this phone's with --number" in fails()
    assert "--number must be in E.164 form" in fails("--number", "5551230001")
    # A list Twilio refuses (the helper raises no TwilioRestException for a list's page).
    rest.refusals.append(("GET", SERVERLESS, "/v1/Services", 403, 20403,
                          "Serverless is not available for this account"))
    err = fails("--number", NUMBER)
    assert ("Twilio refused to read the account's Functions services: Serverless is not "
            "available for this account (HTTP 403, error 20403)") in err
    rest.refusals.clear()
    # Twilio cannot build the Function: it stops there (nothing points at a broken Function).
    rest.build_statuses = ("building", "failed")
    before = len(rest.requests)
    done = setup(rest, tmp_path, "--number", NUMBER)
    assert done.returncode == 2 and "Twilio could not build the Function" in done.stderr
    assert not rest.applications and not rest.keys and not (tmp_path / "etc").exists()
    assert [r.shape[2] for r in rest.writes()][-1] == "/v1/Services/ZS*/Builds"
    assert len(rest.requests) > before
    # TLS is verified: a certificate the trusted CAs did not sign is refused, and said so.
    before = len(rest.requests)
    err = fails("--number", NUMBER, REQUESTS_CA_BUNDLE=str(ROOT / "tests" / "nothing.pem"))
    assert "cannot read account" in err and "CA certificate bundle, invalid path" in err
    other_ca = TestCA.create(tmp_path / "other-ca")
    err = fails("--number", NUMBER, REQUESTS_CA_BUNDLE=str(other_ca.cert))
    assert (f"cannot read account {rest.account_sid}: the TLS connection to api.twilio.com "
            "was refused: certificate verify failed: unable to get local issuer certificate") in err
    assert len(rest.requests) == before
    # Twilio out of reach.
    rest.close()
    err = fails("--number", NUMBER)
    assert f"cannot read account {rest.account_sid}: api.twilio.com did not answer" in err


def test_a_verified_caller_id_gives_a_phone_that_only_calls_out(rest, tmp_path):
    rest.add_caller_id("+15557654321")
    done = setup(rest, tmp_path, "--identity", "alice", "--number", "+15557654321")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "+15557654321 is a verified caller ID, not a number of the account" in done.stdout
    assert not any("IncomingPhoneNumbers/" in r.path for r in rest.writes())
    assert rest.contents[next(iter(rest.versions))] == function.function_code(
        "alice", "+15557654321")


def test_files_it_did_not_write_need_force_and_keep_their_other_sections(rest, tmp_path):
    rest.add_number(NUMBER)
    config = config_of(tmp_path)
    config.parent.mkdir(parents=True)
    config.write_text('[account]\nidentity = "desk"\nsignaling_url = "ws://pbx.lan:8089/signal"\n'
                      'codec_preferences = ["pcmu"]\n\n[phone]\ndial_timeout = 3\n')
    done = setup(rest, tmp_path)
    assert done.returncode == 2 and "did not write it" in done.stderr and "--force" in done.stderr
    assert not rest.requests  # refused before asking Twilio anything
    assert setup(rest, tmp_path, "--force").returncode == 0
    cfg = appliance_config.load(config)
    assert cfg.account.identity == "desk" and cfg.account.signaling_url is None
    assert cfg.account.codec_preferences == ("pcmu",) and cfg.phone.dial_timeout == 3


def test_the_starter_install_sh_put_in_etc_is_filled_in_without_force(rest, tmp_path):
    """`install.sh --system` then `piphone twilio setup`, as the README says."""
    rest.add_number(NUMBER)
    config = config_of(tmp_path)
    config.parent.mkdir(parents=True)
    shutil.copy(ROOT / "systemd" / "piphone.toml.example", config)
    shutil.copy(ROOT / "systemd" / "secrets.toml.example", config.parent / "secrets.toml")
    secrets = config.parent / "secrets.toml"
    os.chmod(secrets, 0o600)
    os.chown(secrets, 998, 998)  # the service's system user owns it (install.sh: piphone)
    done = setup(rest, tmp_path, "--identity", "kitchen")
    assert done.returncode == 0, done.stdout + done.stderr
    st = secrets.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (998, 998, 0o600)
    cfg = appliance_config.load(config)
    assert cfg.account.identity == "kitchen" and cfg.account.signaling_url is None
    assert cfg.leds.ringing == "blink_fast" and cfg.alerts.ring.pattern == (2.0, 4.0)
    text = config.read_text()
    assert "exchange.local" not in text and "[leds]" in text and "# [pins.keypad]" in text


async def test_credentials_typed_on_a_terminal_are_not_shown(rest, tmp_path):
    rest.add_number(NUMBER)
    async with Screen.spawn(argv(tmp_path, "--identity", "alice", "--dry-run"),
                            env=rest.env()) as screen:
        await screen.wait_for(r"Twilio Account SID \(AC\.\.\.\): ")
        screen.type(rest.account_sid + "\r")
        await screen.wait_for(r"Twilio auth token \(not shown\): ")
        screen.type(rest.auth_token + "\r")
        await screen.wait_for("dry run: nothing was changed")
        assert await screen.exited() == 0
    assert rest.account_sid in screen.text() and rest.auth_token not in screen.text()
    assert {r.method for r in rest.requests} == {"GET"} and shapes(rest.requests)[0] == (
        "GET", API, "/2010-04-01/Accounts/AC*.json")


HELPER_SCRIPT = """
import json, sys
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

sid, token = sys.argv[1:3]
client = Client(sid, token)

def error(call):
    try:
        call()
    except TwilioRestException as exc:
        return [exc.status, exc.code]
    except TwilioException as exc:  # a list's page: the helper keeps the response
        return [exc.args[1].status_code, json.loads(exc.args[1].text)["code"]]

out = {
    "wrong token": error(lambda: Client(sid, "0" * 32).api.v2010.accounts(sid).fetch()),
    "no such number": error(lambda: client.api.v2010.account.incoming_phone_numbers(
        "PN" + "0" * 32).update(voice_url="https://example.com/")),
    "no such service": error(lambda: client.serverless.v1.services("ZS" + "0" * 32)
                             .environments.list()),
    "numbers": [n.phone_number for n in client.api.v2010.account.incoming_phone_numbers.list()],
    "some numbers": [n.phone_number for n in
                     client.api.v2010.account.incoming_phone_numbers.list(limit=3)],
}
for name in ("a", "b", "c"):
    client.serverless.v1.services.create(unique_name=name, friendly_name=name)
out["services"] = [s.unique_name for s in client.serverless.v1.services.list()]
out["same name"] = error(lambda: client.serverless.v1.services.create(unique_name="a",
                                                                      friendly_name="a"))
print(json.dumps(out))
"""


def test_the_stand_in_answers_as_twilio_does(rest, tmp_path):
    """What other tests may rely on: the helper reads its answers as it reads Twilio's."""
    rest.page_size = 2
    numbers = [f"+1555123000{n}" for n in range(5)]
    for number in numbers:
        rest.add_number(number)
    done = subprocess.run(with_hosts(tmp_path, HOSTS, [
        sys.executable, "-c", HELPER_SCRIPT, rest.account_sid, rest.auth_token]),
        env=rest.env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "wrong token": [401, 20003], "no such number": [404, 20404],
        "no such service": [404, 20404], "numbers": numbers, "some numbers": numbers[:3],
        "services": ["a", "b", "c"], "same name": [409, 54301]}
    pages = [r.query for r in rest.requests if r.path.endswith("/IncomingPhoneNumbers.json")]
    assert [q.get("Page", ["0"])[0] for q in pages] == ["0", "1", "2", "0"]
