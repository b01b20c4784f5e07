"""The client's TLS for wss:// (a minimal stand-in on this branch: the tls-edge branch owns
this module and its full version replaces this one at merge)."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

log = logging.getLogger(__name__)


def client_context(ca_file: str | Path | None = None, insecure: bool = False) -> ssl.SSLContext:
    """Verified TLS: ``ca_file`` alone if given, else the system's trust store."""
    if insecure:
        log.warning("TLS certificate checks are off (--insecure): anyone on the path can "
                    "read the token")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_file is None:
        return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(ca_file))
    return context
