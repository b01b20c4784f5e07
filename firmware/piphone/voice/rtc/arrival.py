"""RTP handled where it arrives: in the datagram callback, not one task step and one turn of
the event loop later.

aioice queues every datagram that is not STUN (``Connection.data_received``); aiortc's DTLS
transport reads that queue in a task of its own, counts the datagram, unprotects SRTP,
parses RTP and runs the receiver's handler (for audio: statistics, the jitter buffer, then
our ReceiveTap decodes). Nothing on an audio packet's way waits for anything, so the queue
and the task step only cost: per 20 ms packet, a queue put and get, a future, a task step
and a loop turn. ``handle_on_arrival`` registers a DTLS transport with its ICE connection;
hooks._from_peer (the datagram filter, which already knows the datagram came from the ICE
peer) hands each one to ``ArrivalPath.take``, which does what aiortc's reader does with an
SRTP packet (the same counters, the same unprotect, aiortc's own ``_handle_rtp_data``) at
once. Left to aiortc's task: DTLS, SRTCP (one a second), anything before DTLS is up or
after it closed, and any datagram while the queue still holds some (order is kept).

aiortc's handler is a coroutine that, for audio, never suspends: ``run_to_end`` runs it to
its end in place, and should it ever wait for something (an aiortc upgrade), a task of this
module finishes it from where it stopped. hooks.check() fails on ``problem()`` (what we
read of aiortc and aioice is gone).
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Coroutine, Generator
from typing import Any

import aioice.ice
import pylibsrtp
from aiortc import clock
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtp import is_rtcp

log = logging.getLogger(__name__)

ATTRIBUTE = "_piphone_arrival"  # set on aioice's Connection: its ArrivalPath
# What ArrivalPath reads and writes of aiortc's DTLS transport (names as Python mangles them)
_RX_BYTES, _RX_PACKETS = "_RTCDtlsTransport__rx_bytes", "_RTCDtlsTransport__rx_packets"
_READER_NAMES = {_RX_BYTES, _RX_PACKETS, "_rx_srtp", "_handle_rtp_data", "unprotect"}


def problem() -> str | None:
    """What aiortc/aioice changed that the arrival path relies on (None: nothing)."""
    reader = getattr(RTCDtlsTransport, "_recv_next", None)
    code = getattr(reader, "__code__", None)
    if (code is None or not _READER_NAMES <= set(code.co_names)
            or not hasattr(State, "CONNECTED")
            or not asyncio.iscoroutinefunction(getattr(RTCDtlsTransport, "_handle_rtp_data",
                                                       None))):
        return ("aiortc's RTCDtlsTransport no longer reads SRTP as the arrival path does "
                "(_recv_next: counters, _rx_srtp.unprotect, _handle_rtp_data)")
    if "_queue" not in aioice.ice.Connection.data_received.__code__.co_names:
        return ("aioice's Connection.data_received no longer queues in _queue: the arrival "
                "path cannot keep datagrams in order")
    return None


class ArrivalPath:
    """One DTLS transport's SRTP, handled as it arrives (see the module doc)."""

    __slots__ = ("_dtls", "_queue", "failed")

    def __init__(self, dtls: RTCDtlsTransport, connection: aioice.ice.Connection) -> None:
        self._dtls = dtls
        self._queue = connection._queue
        self.failed = 0  # packets whose handling raised (logged once)

    def take(self, data: bytes) -> bool:
        """Handle ``data`` (a non-empty datagram from the ICE peer, not STUN) now if it is
        SRTP on a connected transport and nothing waits in aiortc's queue; False: it is
        not ours, queue it as aioice would."""
        dtls = self._dtls
        if (not 127 < data[0] < 192 or dtls._state is not State.CONNECTED
                or not self._queue.empty() or is_rtcp(data)):
            return False
        srtp = dtls._rx_srtp
        if srtp is None:
            return False
        # as aiortc's RTCDtlsTransport._recv_next counts, unprotects and hands on
        setattr(dtls, _RX_BYTES, getattr(dtls, _RX_BYTES) + len(data))
        setattr(dtls, _RX_PACKETS, getattr(dtls, _RX_PACKETS) + 1)
        arrival_time_ms = clock.current_ms()
        try:
            plain = srtp.unprotect(data)
        except pylibsrtp.Error as exc:  # aiortc drops it, and logs at debug level
            log.debug("SRTP unprotect failed: %s", exc)
            return True
        try:
            run_to_end(dtls._handle_rtp_data(plain, arrival_time_ms=arrival_time_ms))
        except Exception:  # aiortc's reader task would die of it; we lose one packet
            self.failed += 1
            if self.failed == 1:
                log.warning("handling a received RTP packet failed", exc_info=True)
        return True


def handle_on_arrival(dtls: RTCDtlsTransport) -> ArrivalPath:
    """Handle ``dtls``'s SRTP as it arrives (before its ICE connection connects)."""
    connection = dtls.transport._connection
    path = ArrivalPath(dtls, connection)
    setattr(connection, ATTRIBUTE, path)
    return path


# --- a coroutine run in place ----------------------------------------------------------------
_finishing: set[asyncio.Task[None]] = set()  # coroutines that did wait: until they end


def run_to_end(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` now; if it waits for something, a task finishes it from there."""
    try:
        waiting = coro.send(None)
    except StopIteration:
        return
    task = asyncio.ensure_future(_go_on(coro, waiting))
    _finishing.add(task)
    task.add_done_callback(_finished)


@types.coroutine
def _go_on(coro: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, None, None]:
    """The rest of ``coro``, which yielded ``waiting`` (a future, or None: a bare yield) to
    the task running it: this generator yields what it yields, and passes on what the task
    sends or throws (its cancellation)."""
    while True:
        try:
            yield waiting
        except BaseException as exc:  # noqa: BLE001 - the task's, handed on to the coroutine
            try:
                waiting = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting = coro.send(None)
            except StopIteration:
                return


def _finished(task: asyncio.Task[None]) -> None:
    _finishing.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("handling a received RTP packet failed", exc_info=task.exception())
