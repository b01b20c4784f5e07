"""ICE servers of calls towards Twilio: what the SDK does, and what piphone adds to it.

Twilio's Voice SDK brings no ICE servers of its own: a call's RTCPeerConnection gets the
``rtcConfiguration`` the application passes (Device options, ``connect``, ``accept``), else
the browser's default, which is none. Twilio's media edge is ICE-lite on public addresses, so
host candidates reach it. piphone does the same (no server unless configured: aiortc would
otherwise ask a public STUN server), and can add:

- servers from configuration (``[account] ice_servers``);
- TURN credentials from Twilio's Network Traversal Service, fetched with the account's API key
  through the official ``twilio`` helper (``client.tokens.create()``): in a thread (it is
  blocking HTTP), bounded in time, renewed at half their lifetime. When the fetch fails the
  log says so and calls go on with the servers they have.

aiortc uses the first STUN and the first TURN server it is given (UDP or TCP; turns: over TCP)
and ignores the rest, so the configured servers come first.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from typing import Any, Protocol

from . import tls
from .rtc import IceServer
from .tasks import TaskSet

log = logging.getLogger(__name__)

NTS_TTL = 86_400  # seconds the credentials live (Twilio's default and maximum)
FETCH_TIMEOUT = 10.0  # seconds for the whole request
RETRY = 60.0  # seconds before a failed fetch is tried again


class TraversalError(Exception):
    """The Network Traversal Service gave no credentials; the message says why."""


class HasIceServers(Protocol):
    def set_ice_servers(self, servers: Sequence[IceServer]) -> None: ...


def ice_server(urls: str | Sequence[str], username: str | None = None,
               credential: str | None = None) -> IceServer:
    return IceServer(urls if isinstance(urls, str) else tuple(urls), username, credential)


def _fetch_blocking(account_sid: str, api_key_sid: str, api_key_secret: str, ttl: int,
                    timeout: float) -> list[dict[str, Any]]:
    # The helper is imported here, in the worker thread: it is large, and only this uses it.
    from twilio.base.exceptions import TwilioException, TwilioRestException
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    http = TwilioHttpClient(timeout=timeout)
    # Verified against the system's trust store, as signaling is (requests would use certifi;
    # REQUESTS_CA_BUNDLE still wins, as requests documents).
    paths = ssl.get_default_verify_paths()
    http.session.verify = paths.cafile or paths.capath or True
    client = Client(api_key_sid, api_key_secret, account_sid, http_client=http)
    try:
        token = client.tokens.create(ttl=ttl)
    except TwilioRestException as exc:
        raise TraversalError(f"HTTP {exc.status}"
                             + (f", Twilio error {exc.code}" if exc.code else "")
                             + f": {exc.msg}") from None
    except TwilioException as exc:
        raise TraversalError(str(exc)) from None
    except OSError as exc:  # requests' errors are OSErrors: refused, TLS, timeout
        raise TraversalError(f"{type(exc).__name__}: {exc}") from None
    servers = token.ice_servers
    if not isinstance(servers, list):
        raise TraversalError("the answer has no ice_servers list")
    return servers


async def network_traversal(account_sid: str, api_key_sid: str, api_key_secret: str, *,
                            ttl: int = NTS_TTL, timeout: float = FETCH_TIMEOUT
                            ) -> list[IceServer]:
    """Fresh STUN/TURN servers from Twilio's Network Traversal Service (TraversalError)."""
    clock = tls.clock_problem()  # https would fail on the certificate's dates anyway
    if clock is not None:
        raise TraversalError(clock)
    try:
        entries = await asyncio.wait_for(asyncio.to_thread(
            _fetch_blocking, account_sid, api_key_sid, api_key_secret, ttl, timeout),
            timeout + 1)
    except TimeoutError:
        raise TraversalError(f"no answer within {timeout:.0f} s") from None
    servers = []
    for entry in entries:
        urls = entry.get("urls") or entry.get("url") if isinstance(entry, dict) else None
        if not isinstance(urls, str | list):
            log.warning("network traversal: an entry without urls ignored")
            continue
        servers.append(ice_server(urls, entry.get("username"), entry.get("credential")))
    return servers


class NetworkTraversal:
    """Keeps a Device's ICE servers = the configured ones + Twilio's NTS credentials."""

    def __init__(self, device: HasIceServers, configured: Sequence[IceServer], *,
                 account_sid: str, api_key_sid: str, api_key_secret: str, ttl: int = NTS_TTL,
                 timeout: float = FETCH_TIMEOUT, retry: float = RETRY) -> None:
        self.device = device
        self.configured = tuple(configured)
        self._credentials = (account_sid, api_key_sid, api_key_secret)
        self.ttl, self.timeout, self.retry = ttl, timeout, retry
        self._tasks = TaskSet(self)

    def start(self) -> None:
        self._tasks.spawn(self._keep_fresh())

    def close(self) -> None:
        self._tasks.cancel()

    async def _keep_fresh(self) -> None:
        while True:
            try:
                fetched = await network_traversal(*self._credentials, ttl=self.ttl,
                                                  timeout=self.timeout)
            except Exception as exc:  # TraversalError, or a surprise: this task must not die
                log.warning("could not fetch TURN credentials from Twilio's Network Traversal "
                            "Service: %s; calls go on with %d configured ICE server(s); "
                            "retrying in %.0f s", exc, len(self.configured), self.retry,
                            exc_info=None if isinstance(exc, TraversalError) else exc)
                await asyncio.sleep(self.retry)
                continue
            self.device.set_ice_servers(self.configured + tuple(fetched))
            log.info("ICE servers: %d configured + %d from Twilio's Network Traversal Service "
                     "(renewed in %.0f s)", len(self.configured), len(fetched), self.ttl / 2)
            await asyncio.sleep(self.ttl / 2)

    def __repr__(self) -> str:
        return "<NetworkTraversal>"
