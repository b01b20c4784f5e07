"""Why the phone is not registered, in the words `piphone status` and the status line use.

From the Device's errors: a refused token is a TwilioError 20101/20104/20151 (or another
20xxx/31204-31207 token code); a failed connection is a 53000/31005 whose ``original_error`` is
the exception the connection attempt raised (voice/signaling.py keeps it). Pure: tested with
the real exceptions.
"""

from __future__ import annotations

import errno
import socket
import ssl

from ..voice.errors import TOKEN_REFUSALS

NO_NETWORK = "no network"
CERTIFICATE = "certificate"
TOKEN_REFUSED = "token refused"
UNREACHABLE = "exchange unreachable"
STARTING = "registering"
REASONS = (NO_NETWORK, CERTIFICATE, TOKEN_REFUSED, UNREACHABLE, STARTING)

# Twilio's token codes: AccessTokenInvalid, ...Expired, AuthenticationFailed, and the JWT ones.
_TOKEN_CODES = {20101, 20102, 20103, 20104, 20105, 20106, 20107, 20151, 31202, 31204, 31205,
                31206, 31207} | set(TOKEN_REFUSALS) | set(TOKEN_REFUSALS.values())
# No route at all (no interface up, no default route) or no name service: the network, not
# the exchange. (EHOSTUNREACH is a host that does not answer on a working network.)
_NO_NETWORK_ERRNOS = {errno.ENETUNREACH, errno.ENETDOWN}
_NO_NETWORK_GAI = {socket.EAI_AGAIN}  # "Temporary failure in name resolution": no DNS reachable


def reason_of(error: object) -> str:
    """One of REASONS (not STARTING) for a registration failure ``error``."""
    if getattr(error, "code", None) in _TOKEN_CODES:
        return TOKEN_REFUSED
    cause = getattr(error, "original_error", None) or error
    for exc in _chain(cause):
        if isinstance(exc, ssl.SSLCertVerificationError | ssl.SSLError):
            return CERTIFICATE
        if isinstance(exc, socket.gaierror):
            return NO_NETWORK if exc.errno in _NO_NETWORK_GAI else UNREACHABLE
        if isinstance(exc, OSError) and exc.errno in _NO_NETWORK_ERRNOS:
            return NO_NETWORK
    return UNREACHABLE


def in_words(error: object) -> str:
    """An error in words for the status; the server's words may be in it: printable and
    bounded before anyone shows them."""
    text = getattr(error, "message", None) or str(error)
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def _chain(exc: object) -> list[BaseException]:
    """The exception and its causes (a websockets error wraps the socket's)."""
    found: list[BaseException] = []
    while isinstance(exc, BaseException) and exc not in found and len(found) < 10:
        found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found
