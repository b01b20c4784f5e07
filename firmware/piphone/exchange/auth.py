"""Access token verification, as Twilio's edge does it: HS256 with the API key's secret.

Two kinds of key sign tokens. The exchange's own (``api_key_sid``/``api_key_secret`` in
exchange.toml) signs for any identity: it is the administrator's (``piphone token``). A phone's
key (``piphone exchange add-phone NAME``, phones.py) signs only for NAME, so the disk of one
stolen phone gives away one identity, not the exchange.

What is checked, with the codes Twilio's signaling uses:

- HS256 only, a key we know (``iss``), its signature, this exchange's account (``sub``): 31204;
- ``exp`` passed: 31205; ``nbf`` or ``iat`` in the future: 31204 (Twilio's API says 20105);
- a start (``iat``, or ``nbf`` as Twilio's helpers write) and ``exp - start`` at most 24 h:
  31207 JWTTokenExpirationTooLongError (Twilio's REST and IAM APIs call the same rule 20157);
- the identity is a client identity (voice/identity.py): 31204.

Grants: ``voice.incoming.allow`` true lets a session register for incoming calls (else 31201,
AuthorizationError). Placing a call needs a ``voice`` grant (else 31002, "Connection declined",
as Twilio declines a token that does not allow outgoing calls). At Twilio the grant's
``outgoing.application_sid`` names the TwiML App that routes the call; the local exchange has
no TwiML App (its dial plan routes), so the voice grant itself stands for outgoing permission.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from ..voice import identity as identities
from ..voice.errors import TwilioError
from ..voice.tasks import TaskSet
from ..voice.tokens import MAX_TTL
from .config import ExchangeConfig, phone_keys_path
from .phones import PhoneKeys

LEEWAY = 5  # seconds of clock skew tolerated on nbf/iat/exp
MAX_TOKEN_CHARS = 8192  # a Voice token is under 1 KB; nothing longer is parsed
# (code, message) of the refusals the exchange sends for a grant that does not allow an action
INCOMING_REFUSED = (31201, "this token does not allow incoming calls (voice.incoming.allow)")
OUTGOING_REFUSED = (31002, "Connection declined: this token does not allow outgoing calls "
                           "(no voice grant)")


@dataclass(frozen=True)
class Grant:
    identity: str
    expires_at: float
    incoming_allowed: bool
    outgoing_allowed: bool = True
    key_sid: str = ""  # the key that signed the token (a phone's, or the exchange's)

    def ttl(self, now: float | None = None) -> int:
        return max(0, int(self.expires_at - (time.time() if now is None else now)))


def verify(token: object, config: ExchangeConfig, keys: PhoneKeys | None = None) -> Grant:
    """The token's grant, or TwilioError 31204 (invalid), 31205 (expired) or 31207 (lives
    longer than 24 h). ``keys``: the phones' keys, besides the exchange's own."""
    if not isinstance(token, str) or not token:
        raise TwilioError(31204, "no access token")
    if len(token) > MAX_TOKEN_CHARS:
        raise TwilioError(31204, "invalid access token: too long")
    try:
        claimed = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except (jwt.PyJWTError, ValueError, UnicodeError):
        # UnicodeError: PyJWT encodes the text first, and a lone surrogate cannot be.
        raise TwilioError(31204, "invalid access token: not a JWT") from None
    issuer = claimed if isinstance(claimed, str) else ""  # "": no key of ours
    only_for = None  # a phone's key signs for its own identity only
    if issuer and issuer == config.api_key_sid:
        secret = config.api_key_secret
    elif keys is not None and (key := keys.get(issuer)) is not None:
        secret, only_for = key.secret, key.identity
    else:
        raise TwilioError(31204, "invalid access token: signed with a key this exchange "
                                 "does not know (iss)")
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], issuer=issuer, leeway=LEEWAY,
                            options={"require": ["exp", "iss", "sub"]})
    except jwt.ExpiredSignatureError:
        raise TwilioError(31205, "access token expired") from None
    except jwt.ImmatureSignatureError:
        raise TwilioError(31204, "invalid access token: not yet valid (nbf or iat)") from None
    except (jwt.PyJWTError, ValueError, UnicodeError, TypeError) as exc:
        raise TwilioError(31204, f"invalid access token: {exc}") from None
    if claims.get("sub") != config.account_sid:
        raise TwilioError(31204, "invalid access token: account (sub) is not this exchange's")
    _check_lifetime(claims)
    grants = claims.get("grants")
    identity = grants.get("identity") if isinstance(grants, dict) else None
    if not isinstance(identity, str) or not identity:
        raise TwilioError(31204, "invalid access token: no identity grant")
    if not identities.is_identity(identity):
        raise TwilioError(31204, f"invalid access token: the identity is not a client "
                                 f"identity ({identities.RULE})")
    if only_for is not None and identity != only_for:
        raise TwilioError(31204, "invalid access token: this phone's key signs tokens for its "
                                 "own identity only")
    assert isinstance(grants, dict)
    voice = grants.get("voice")
    incoming = voice.get("incoming") if isinstance(voice, dict) else None
    return Grant(identity=identity, expires_at=float(claims["exp"]),
                 incoming_allowed=isinstance(incoming, dict) and incoming.get("allow") is True,
                 outgoing_allowed=isinstance(voice, dict), key_sid=issuer)


def _check_lifetime(claims: dict) -> None:
    """A start time, and no more than 24 h from it to ``exp`` (PyJWT checked the types of
    ``exp``/``nbf``/``iat`` and that none is in the future or past where it must not be)."""
    starts = [claims[k] for k in ("iat", "nbf") if k in claims]
    if not starts:
        raise TwilioError(31204, "invalid access token: no start time (iat or nbf)")
    exp = claims["exp"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in [exp, *starts]):
        raise TwilioError(31204, "invalid access token: exp, iat and nbf must be numbers")
    if exp - min(starts) > MAX_TTL:
        raise TwilioError(31207, f"access token lives {int(exp - min(starts))} s: at most "
                                 f"{MAX_TTL} s (24 h) from iat/nbf to exp")


class Authenticator:
    """The exchange's token checks: its own key, and the phones' keys kept in step with their
    file (phones.py), whose watch task it owns. ``phone_keys.on("revoked", ...)`` hears of
    keys taken away."""

    def __init__(self, config: ExchangeConfig) -> None:
        self.config = config
        self.phone_keys = (PhoneKeys(phone_keys_path(config))
                           if config.phone_keys is not None or config.path is not None else None)
        self._tasks = TaskSet(self)

    def verify(self, token: object) -> Grant:
        return verify(token, self.config, self.phone_keys)

    def start(self) -> None:
        if self.phone_keys is not None and not len(self._tasks):
            self._tasks.spawn(self.phone_keys.watch())

    def close(self) -> None:
        self._tasks.cancel()
