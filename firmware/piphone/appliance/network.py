"""The network settings a phone's Device is built with, from its [account] config: the
service's Device and `piphone check --network`'s preflight test use the same."""

from __future__ import annotations

import ssl
from typing import Any

from ..voice import ice, tls
from ..voice.rtc import IceServer
from .config import AccountConfig


def ice_servers(account: AccountConfig) -> list[IceServer]:
    return [ice.ice_server(s.urls, s.username, s.credential) for s in account.ice_servers]


def device_network(account: AccountConfig,
                   ssl_context: ssl.SSLContext | None = None) -> dict[str, Any]:
    """Device options: codecs, ICE addresses and servers, and where signaling goes (a local
    exchange's URL, with its CA for wss://, or Twilio's edges over the system's trust).
    ``ssl_context``: one already made from ``account.ca_file``, to use again."""
    options: dict[str, Any] = {
        "codec_preferences": account.codec_preferences,
        "ice_addresses": account.ice_addresses,
        "ice_servers": ice_servers(account),
    }
    if account.signaling_url:
        options["signaling_url"] = account.signaling_url
        if account.ca_file:  # a local exchange with its own CA (wss://, config checks)
            options["ssl_context"] = ssl_context or tls.client_context(ca_file=account.ca_file)
    else:
        options["edge"] = account.edge  # verified against the system's trust store
    return options
