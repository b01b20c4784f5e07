"""TLS for piphone's clients (signaling over wss://, Insights and Twilio's API over https://),
built in one place.

- By default a server is verified as a browser would: against the system's trust store
  (OpenSSL's default paths, so ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` are honoured), with its
  host name checked.
- ``ca_file`` trusts that CA instead of the system's (a local exchange with its own CA).
- ``insecure`` turns every check off, and says so in the log each time a context is built.
- ws:// and http:// get no TLS context at all.

A refused certificate is put into words a maker understands (``explain``). A Raspberry Pi has
no real-time clock: until NTP has set it, the clock says 1970 or the time of the last shutdown,
and every certificate looks invalid. A clock earlier than this release's date is therefore
reported as "clock not set" (``clock_problem``), and the connection waits for it, instead of
blaming the certificate.
"""

from __future__ import annotations

import datetime
import logging
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .. import RELEASE_DATE
from ..errors import PiphoneError

log = logging.getLogger(__name__)


class TLSSetupError(PiphoneError, ValueError):
    """A CA file that cannot be used."""


def client_context(*, ca_file: str | Path | None = None, insecure: bool = False
                   ) -> ssl.SSLContext:
    """The context of a TLS client: verified against the system's trust store (or ``ca_file``
    alone), host name checked; ``insecure``: no checks at all (logged)."""
    if insecure:
        log.warning("TLS certificate checks are OFF (--insecure): anyone on the network path "
                    "can pose as the server and read the calls' signaling")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_file is None:
        # load_default_certs -> OpenSSL's default paths, which SSL_CERT_FILE/_DIR override.
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except FileNotFoundError:
        raise TLSSetupError(f"CA file {ca_file}: no such file") from None
    except PermissionError:
        raise TLSSetupError(f"CA file {ca_file}: not readable (permission denied)") from None
    except (OSError, ssl.SSLError) as exc:
        raise TLSSetupError(f"CA file {ca_file}: not a PEM certificate ({exc})") from None


def is_secure(url: str) -> bool:
    return urlsplit(url).scheme in ("wss", "https")


def connect_options(url: str, context: ssl.SSLContext | None) -> dict[str, Any]:
    """The ``ssl`` keyword of a connect to ``url``: the context for wss://, none for ws://
    (websockets refuses ``ssl=None`` for wss:// and any ``ssl`` for ws://)."""
    if not is_secure(url):
        return {}
    return {"ssl": context if context is not None else client_context()}


# --- the clock ---------------------------------------------------------------------------------
def wall_clock() -> datetime.datetime:
    """This machine's time (UTC); the one place piphone reads it for TLS."""
    return datetime.datetime.now(datetime.UTC)


def clock_problem(now: datetime.datetime | None = None) -> str | None:
    """A sentence if the clock is before this release's date (so it cannot be right)."""
    now = now or wall_clock()
    if now.date() < RELEASE_DATE:
        return f"clock not set (it says {now:%Y-%m-%d}; waiting for NTP)"
    return None


# --- refusals in words ---------------------------------------------------------------------------
# OpenSSL's X509_V_ERR_* codes (x509_vfy.h), grouped by what a maker can do about them.
_UNKNOWN_CA = {
    2,   # unable to get issuer certificate
    18,  # self-signed certificate
    19,  # self-signed certificate in certificate chain
    20,  # unable to get local issuer certificate
    21,  # unable to verify the first certificate
    24,  # invalid CA certificate
    27,  # certificate not trusted
}
_WRONG_NAME = {62, 64}  # hostname mismatch, IP address mismatch
_NOT_YET_VALID = 9
_EXPIRED = 10


def explain(exc: BaseException, url: str, now: datetime.datetime | None = None) -> str | None:
    """What went wrong with TLS to ``url``, in words; None if ``exc`` is not a TLS failure."""
    host = urlsplit(url).hostname or url
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        detail = exc.verify_message or exc.reason or str(exc)
        if code in _UNKNOWN_CA:
            return (f"certificate of {host} refused: unknown CA ({detail}): no certificate "
                    "authority this machine trusts signed it. A local exchange with its own "
                    "CA needs [account] ca_file (or --ca-file); elsewhere, something on the "
                    "network may be posing as the server")
        if code in _WRONG_NAME:
            return (f"certificate of {host} refused: wrong host name ({detail}): the server "
                    f"presented a certificate made out to another name than {host}")
        clock = f"this machine's clock says {(now or wall_clock()):%Y-%m-%d %H:%M} UTC"
        if code == _EXPIRED:
            return (f"certificate of {host} refused: expired ({clock}; if that is right, the "
                    "server's certificate is out of date)")
        if code == _NOT_YET_VALID:
            return (f"certificate of {host} refused: not yet valid ({clock}; if that is "
                    "wrong, set the clock or wait for NTP)")
        return f"certificate of {host} refused: {detail} (OpenSSL error {code})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {host} failed: {exc.reason or exc}"
    return None
