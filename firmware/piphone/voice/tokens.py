"""Access tokens: mint them with Twilio's helper, read them without verifying.

The client never holds the signing secret, so it only reads ``exp`` and the identity;
verification is the server's job (exchange/auth.py, or Twilio's edge).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant

from ..errors import InvalidArgumentError
from . import identity as identities
from .errors import TwilioError

MAX_TTL = 86400  # seconds: Twilio refuses a token that lives longer (20157 / wire 31207)


@dataclass(frozen=True)
class TokenInfo:
    identity: str | None
    expires_at: float | None  # unix seconds
    issuer: str | None  # API key SID
    account_sid: str | None

    def seconds_left(self, now: float | None = None) -> float | None:
        if self.expires_at is None:
            return None
        return self.expires_at - (time.time() if now is None else now)


def mint(
    *,
    account_sid: str,
    api_key_sid: str,
    api_key_secret: str,
    identity: str,
    ttl: int = 3600,
    outgoing_application_sid: str | None = None,
    incoming_allow: bool = True,
) -> str:
    """An access token with a Voice grant, as Twilio's server-side helpers make them.

    Refuses (InvalidArgumentError) an identity Twilio would not take (voice/identity.py) and
    a lifetime over 24 h, so no piphone mints a token the exchange or Twilio refuses (a ttl of
    0 or less makes a token that has already expired, as Twilio's helper does)."""
    if not identities.is_identity(identity):
        raise InvalidArgumentError(f"identity must be {identities.RULE}")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl > MAX_TTL:
        raise InvalidArgumentError(f"ttl must be at most {MAX_TTL} seconds (24 h, as at "
                                   "Twilio)")
    token = AccessToken(account_sid, api_key_sid, api_key_secret, identity=identity, ttl=ttl)
    token.add_grant(
        VoiceGrant(
            incoming_allow=incoming_allow,
            outgoing_application_sid=outgoing_application_sid,
        )
    )
    encoded = token.to_jwt()
    return encoded.decode() if isinstance(encoded, bytes) else encoded


def read(token: str) -> TokenInfo:
    """Identity and expiry of a token, unverified. Raises TwilioError 20101 if unreadable."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise TwilioError(20101, f"access token is not a JWT: {exc}", original_error=exc) from None
    raw = claims.get("grants")
    grants: dict[str, Any] = raw if isinstance(raw, dict) else {}
    identity = grants.get("identity")
    exp = claims.get("exp")
    return TokenInfo(
        identity=identity if isinstance(identity, str) else None,
        expires_at=float(exp) if isinstance(exp, int | float) else None,
        issuer=claims.get("iss"),
        account_sid=claims.get("sub"),
    )
