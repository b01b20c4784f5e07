"""The one place where piphone reaches into aiortc/aioice internals.

aioice gathers host candidates from every interface except loopback
(``aioice.ice.get_host_addresses``) and has no option to choose them. A phone needs that
choice: a Pi with eth0 and wlan0 should offer one, and tests on a loopback-only network
namespace must offer 127.0.0.1 or ICE has no candidate at all. We wrap that module-level
function once; the addresses for a gathering are set in a ContextVar by whoever gathers,
so peers in one process (the exchange and clients in tests) can differ.

Pinned versions: see pyproject.toml. ``check()`` fails loudly, naming the hook, if an
upgrade removed what we rely on; tests/unit/test_rtc_hooks.py runs it.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
from collections.abc import Iterator, Sequence

import aioice.ice

# None means "aioice's own choice" (every non-loopback address).
_ice_addresses: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "piphone_ice_addresses", default=None
)

_original_get_host_addresses = getattr(aioice.ice, "get_host_addresses", None)


class HookMissing(RuntimeError):
    """aiortc/aioice changed: a private hook piphone relies on is gone."""


def check() -> None:
    if _original_get_host_addresses is None:
        raise HookMissing(
            "aioice.ice.get_host_addresses is gone: piphone cannot choose ICE host addresses"
        )
    if aioice.ice.get_host_addresses is not _chosen_host_addresses:
        raise HookMissing("aioice.ice.get_host_addresses is not wrapped by piphone")


def _chosen_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    chosen = _ice_addresses.get()
    if chosen is None:
        return _original_get_host_addresses(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    result = []
    for address in chosen:
        version = ipaddress.ip_address(address).version
        if (version == 4 and use_ipv4) or (version == 6 and use_ipv6):
            result.append(address)
    return result


if _original_get_host_addresses is not None:
    aioice.ice.get_host_addresses = _chosen_host_addresses


@contextlib.contextmanager
def ice_addresses(addresses: Sequence[str] | None) -> Iterator[None]:
    """Within this block (and tasks it starts), ICE offers exactly ``addresses``."""
    if addresses is not None:
        for address in addresses:
            ipaddress.ip_address(address)  # raises ValueError for a bad address
    token = _ice_addresses.set(tuple(addresses) if addresses is not None else None)
    try:
        yield
    finally:
        _ice_addresses.reset(token)
