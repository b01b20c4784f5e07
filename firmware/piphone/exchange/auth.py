"""Access token verification, as Twilio's edge does it: HS256 with the API key secret."""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from ..voice.errors import TwilioError
from .config import ExchangeConfig

LEEWAY = 5  # seconds of clock skew tolerated on nbf/exp


@dataclass(frozen=True)
class Grant:
    identity: str
    expires_at: float
    incoming_allowed: bool

    def ttl(self, now: float | None = None) -> int:
        return max(0, int(self.expires_at - (time.time() if now is None else now)))


def verify(token: object, config: ExchangeConfig) -> Grant:
    """The token's grant, or TwilioError 31204 (invalid) / 31205 (expired)."""
    if not isinstance(token, str) or not token:
        raise TwilioError(31204, "no access token")
    try:
        claims = jwt.decode(
            token,
            config.api_key_secret,
            algorithms=["HS256"],
            issuer=config.api_key_sid,
            leeway=LEEWAY,
            options={"require": ["exp", "iss", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise TwilioError(31205, "access token expired") from None
    except jwt.PyJWTError as exc:
        raise TwilioError(31204, f"invalid access token: {exc}") from None
    if claims.get("sub") != config.account_sid:
        raise TwilioError(31204, "invalid access token: account (sub) is not this exchange's")
    grants = claims.get("grants")
    identity = grants.get("identity") if isinstance(grants, dict) else None
    if not isinstance(identity, str) or not identity:
        raise TwilioError(31204, "invalid access token: no identity grant")
    voice = grants.get("voice") if isinstance(grants.get("voice"), dict) else {}
    incoming = voice.get("incoming") if isinstance(voice.get("incoming"), dict) else {}
    return Grant(identity=identity, expires_at=float(claims["exp"]),
                 incoming_allowed=bool(incoming.get("allow", False)))
