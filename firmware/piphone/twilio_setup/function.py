"""What `piphone twilio setup` names in the account, and the Twilio Function that answers calls.

One Function per phone answers both of Twilio's questions: a call to the phone's number rings
the phone's identity; a call the phone places (through its TwiML App, ``From`` is
``client:IDENTITY``) dials ``To``, a number with the account's caller ID or another client, and
one with no ``To`` (the SDK's preflight test call, `piphone check --network`) hears itself
(``<Echo/>``).
It runs as a *protected* Function: Twilio's runtime rejects every request that does not carry
a valid ``X-Twilio-Signature`` made with the account's auth token, so nobody on the internet
can make the account dial anywhere through it.
"""

from __future__ import annotations

import hashlib
import json
import re

ENVIRONMENT = "phone"  # the Serverless environment's unique name
FUNCTION_NAME = "call"  # the Function's friendly name
FUNCTION_PATH = "/call"  # its path under the environment's domain
VISIBILITY = "protected"  # only requests signed by Twilio (X-Twilio-Signature)
FRIENDLY_NAME_MAX = 64  # Twilio's limit for an API key's and a TwiML App's friendly name


def resource_name(identity: str) -> str:
    """The friendly name of this phone's API key and TwiML App: ``piphone <identity>``."""
    return f"piphone {identity}"[:FRIENDLY_NAME_MAX]


def service_name(identity: str) -> str:
    """The Serverless service's unique name, which becomes part of its domain name: letters,
    digits and hyphens only, so an identity that needs changing gets a short hash to keep
    two identities (``Alice``, ``alice``) apart."""
    slug = re.sub(r"[^a-z0-9]+", "-", identity.lower()).strip("-")[:30].strip("-") or "phone"
    if slug != identity:
        slug += "-" + hashlib.sha256(identity.encode()).hexdigest()[:6]
    return f"piphone-{slug}"


def function_code(identity: str, caller_id: str | None) -> str:
    """The Function's JavaScript for this phone; the same inputs give the same text, so a
    second setup sees that what is deployed is already right."""
    return _TEMPLATE.replace("@IDENTITY@", json.dumps(identity)).replace(
        "@CALLER_ID@", json.dumps(caller_id))


_TEMPLATE = """\
// piphone: the calls of one desk phone. Written by `piphone twilio setup`; it writes it again.
// Deployed "protected": Twilio runs it only for requests signed with this account's auth
// token (X-Twilio-Signature), so nobody else can make the account place calls through it.
const IDENTITY = @IDENTITY@;
const CALLER_ID = @CALLER_ID@; // the number calls go out from (null: none)

exports.handler = function (context, event, callback) {
  const twiml = new Twilio.twiml.VoiceResponse();
  const to = String(event.To || "").trim();
  if (event.From === "client:" + IDENTITY && to === "") {
    // A call that names no one is the SDK's preflight test (`piphone check --network`): echo.
    twiml.echo();
  } else if (event.From === "client:" + IDENTITY) {
    dialOut(twiml, to);
  } else {
    // A call to the phone's number rings the phone; the caller hears ringing until it answers.
    twiml.dial({ answerOnBridge: true }).client(IDENTITY);
  }
  callback(null, twiml);
};

// What the phone dialled: client:NAME or NAME (a Twilio client), +E.164, or digits (00 for +,
// as a keypad has no +; other digits as Twilio reads them, e.g. a US number without +1).
function dialOut(twiml, to) {
  const client = /^client:([A-Za-z0-9_.@+-]{1,121})$/.exec(to) ||
    /^([A-Za-z0-9_.@-]*[A-Za-z][A-Za-z0-9_.@-]*)$/.exec(to);
  if (client) {
    twiml.dial({ answerOnBridge: true }).client(client[1]);
    return;
  }
  const number = to.replace(/^00/, "+");
  if (!/^\\+?[0-9]{3,15}$/.test(number)) {
    twiml.say("The number " + to.slice(0, 40) + " cannot be dialled.");
  } else if (CALLER_ID === null) {
    twiml.say("This phone has no number to call out from.");
  } else {
    twiml.dial({ answerOnBridge: true, callerId: CALLER_ID }).number(number);
  }
}
"""
