"""Leak checks of the reconnection tests: after everything is shut down, no task is left
running, no socket of ours is open and every RTCPeerConnection ever made is closed."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import stat

from aiortc import RTCPeerConnection

from ..conftest import until


def open_sockets() -> int:
    count = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.stat(f"/proc/self/fd/{name}").st_mode):
                count += 1
    return count


def live_tasks() -> list[asyncio.Task]:
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() if t is not current and not t.done()]


def open_peer_connections() -> list[RTCPeerConnection]:
    return [o for o in gc.get_objects()
            if type(o) is RTCPeerConnection and o.connectionState != "closed"]


class LeakCheck:
    def __init__(self) -> None:
        self.sockets = open_sockets()

    async def shut_down_and_check(self, phones, proxy, exchange) -> None:
        """Destroy the phones, close the proxy and the exchange, then nothing may be left."""
        for phone in phones:
            await asyncio.wait_for(phone.device.destroy(), 10)
        if proxy is not None:
            await proxy.close()
        await exchange.close()
        await until(lambda: not live_tasks(), 10,
                    what=f"every task to end (left: {live_tasks()})")
        await until(lambda: not open_peer_connections(), 5,
                    what=f"peer connections to close ({open_peer_connections()})")
        await until(lambda: open_sockets() <= self.sockets, 5,
                    what=f"sockets to close ({open_sockets()} open, {self.sockets} before)")


def open_udp_sockets() -> int:
    """UDP sockets this process holds (its fds whose inode /proc/net/udp* lists)."""
    udp: set[str] = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            udp.update(line.split()[9] for line in list(lines)[1:])
    count = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{name}")
            if target.startswith("socket:[") and target[8:-1] in udp:
                count += 1
    return count
