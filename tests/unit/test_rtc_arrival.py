"""arrival.py: SRTP handled in the datagram callback, and aiortc's coroutine run in place.
(Coroutines: asyncio objects need a running loop.)"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiortc.rtcdtlstransport import State

from piphone.voice.rtc import arrival
from piphone.voice.rtc import hooks as rtc_hooks

RTP = bytes([0x80, 111]) + bytes(10)
RTCP = bytes([0x80, 200]) + bytes(10)
DTLS = bytes([22, 0xFE, 0xFD]) + bytes(10)


async def test_what_it_reads_of_aiortc_is_there():
    assert arrival.problem() is None
    rtc_hooks.check()


async def test_a_coroutine_that_never_waits_runs_to_its_end_in_place():
    done = []

    async def handler() -> None:
        done.append(1)

    arrival.run_to_end(handler())
    assert done == [1]  # before any loop turn


async def test_a_coroutine_that_waits_is_finished_by_a_task_from_where_it_stopped():
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    steps = []

    async def handler() -> None:
        steps.append("before")
        steps.append(await future)
        await asyncio.sleep(0)  # a bare yield too
        steps.append("after")

    arrival.run_to_end(handler())
    assert steps == ["before"]
    future.set_result("woken")
    for _ in range(5):
        await asyncio.sleep(0)
    assert steps == ["before", "woken", "after"] and not arrival._finishing


async def test_an_error_after_the_wait_is_logged_and_the_task_let_go(caplog):
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def handler() -> None:
        await future
        raise ValueError("bad packet")

    arrival.run_to_end(handler())
    future.set_result(None)
    for _ in range(3):
        await asyncio.sleep(0)
    assert "handling a received RTP packet failed" in caplog.text and not arrival._finishing


class FakeSrtp:
    def __init__(self) -> None:
        self.unprotected: list[bytes] = []

    def unprotect(self, data: bytes) -> bytes:
        self.unprotected.append(data)
        return data


def fake_path(handle=None):
    """An ArrivalPath over a stand-in for aiortc's DTLS transport (what take() reads)."""
    handled: list[bytes] = []

    async def handle_rtp_data(data: bytes, arrival_time_ms: int) -> None:
        handled.append(data)

    dtls = SimpleNamespace(_state=State.CONNECTED, _rx_srtp=FakeSrtp(),
                           _handle_rtp_data=handle or handle_rtp_data,
                           _RTCDtlsTransport__rx_bytes=0, _RTCDtlsTransport__rx_packets=0)
    connection = SimpleNamespace(_queue=asyncio.Queue())
    return arrival.ArrivalPath(dtls, connection), dtls, connection, handled  # type: ignore[arg-type]


async def test_srtp_is_counted_unprotected_and_handled_at_once():
    path, dtls, _, handled = fake_path()
    assert path.take(RTP)
    assert handled == [RTP] and dtls._rx_srtp.unprotected == [RTP]
    assert (dtls._RTCDtlsTransport__rx_packets, dtls._RTCDtlsTransport__rx_bytes) == (1, len(RTP))


@pytest.mark.parametrize("state", [State.NEW, State.CONNECTING, State.CLOSED, State.FAILED])
async def test_nothing_is_taken_unless_dtls_is_connected(state):
    path, dtls, _, handled = fake_path()
    dtls._state = state
    assert not path.take(RTP) and handled == []


async def test_dtls_srtcp_and_anything_behind_a_queued_datagram_take_aiortcs_way():
    path, dtls, connection, handled = fake_path()
    assert not path.take(DTLS) and not path.take(RTCP)
    connection._queue.put_nowait((RTCP, 1))  # aiortc's reader has not read it yet: keep order
    assert not path.take(RTP)
    assert handled == [] and dtls._RTCDtlsTransport__rx_packets == 0


async def test_a_handler_that_raises_loses_that_packet_only_and_logs_once(caplog):
    async def broken(data: bytes, arrival_time_ms: int) -> None:
        raise KeyError("aiortc bug")

    path, _, _, _ = fake_path(broken)
    assert path.take(RTP) and path.take(RTP)
    assert path.failed == 2
    assert caplog.text.count("handling a received RTP packet failed") == 1
