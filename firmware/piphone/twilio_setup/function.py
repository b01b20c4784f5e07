"""What `piphone twilio setup` names in the account, and the Twilio Function that answers calls.

One Function per phone answers both of Twilio's questions: a call to the phone's number rings
the phone's identity; a call the phone places (through its TwiML App, ``From`` is
``client:IDENTITY``) dials ``To``, a number with the account's caller ID or another client, and
one with no ``To`` (the SDK's preflight test call, `piphone check --network`) hears itself
(``<Echo/>``). A call to the number that the phone does not answer within VOICEMAIL_AFTER
seconds (or rejects: Twilio reports it busy; or one that finds it offline) is recorded: the
``<Dial>``'s action comes back to the Function, which answers with a greeting and ``<Record>``
(at most MAX_MESSAGE seconds, a recording status callback to the Function again); the phone
finds the recordings with its API key through Twilio's REST API (voice/recordings.py).
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
VOICEMAIL_AFTER = 20  # seconds a call to the number rings the phone before voicemail takes it
MAX_MESSAGE = 120  # seconds a voicemail message may last


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
        "@CALLER_ID@", json.dumps(caller_id)).replace(
        "@VOICEMAIL_AFTER@", str(VOICEMAIL_AFTER)).replace("@MAX_MESSAGE@", str(MAX_MESSAGE)
                                                          ).replace("@PATH@", FUNCTION_PATH)


_TEMPLATE = """\
// piphone: the calls of one desk phone. Written by `piphone twilio setup`; it writes it again.
// Deployed "protected": Twilio runs it only for requests signed with this account's auth
// token (X-Twilio-Signature), so nobody else can make the account place calls through it.
const IDENTITY = @IDENTITY@;
const CALLER_ID = @CALLER_ID@; // the number calls go out from (null: none)
const VOICEMAIL_AFTER = @VOICEMAIL_AFTER@; // seconds the phone rings before voicemail answers
const MAX_MESSAGE = @MAX_MESSAGE@; // seconds a message may last
const UNANSWERED = ["no-answer", "busy", "failed"]; // busy: the phone rejected it

exports.handler = function (context, event, callback) {
  const twiml = new Twilio.twiml.VoiceResponse();
  const to = String(event.To || "").trim();
  if (event.RecordingSid) {
    // <Record>'s action (the message is kept) or its recording status callback: done.
    twiml.hangup();
  } else if (event.DialCallStatus !== undefined) {
    // <Dial>'s action: how ringing the phone ended. Unanswered: the caller leaves a message.
    if (UNANSWERED.includes(event.DialCallStatus) && event.From !== "client:" + IDENTITY) {
      twiml.say("Please leave a message after the tone.");
      twiml.record({ maxLength: MAX_MESSAGE, playBeep: true, timeout: 10, action: "@PATH@",
                     recordingStatusCallback: "@PATH@",
                     recordingStatusCallbackEvent: "completed" });
    } else {
      twiml.hangup();
    }
  } else if (event.From === "client:" + IDENTITY && to === "") {
    // A call that names no one is the SDK's preflight test (`piphone check --network`): echo.
    twiml.echo();
  } else if (event.From === "client:" + IDENTITY) {
    dialOut(twiml, to);
  } else {
    // A call to the phone's number rings the phone; the caller hears ringing until it answers
    // (after VOICEMAIL_AFTER seconds the action above takes a message).
    twiml.dial({ answerOnBridge: true, timeout: VOICEMAIL_AFTER, action: "@PATH@" })
      .client(IDENTITY);
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
