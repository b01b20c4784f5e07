"""Reconnection under harder faults (issue 8): signaling and media lost together, a fault
while the call rings, a fault during accept, and the exchange process restarted mid-call."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys

import pytest

from piphone.exchange.calls import Phase
from piphone.voice import CallStatus, DeviceState

from ..conftest import until
from .helpers import DEVICE_EVENTS, Events, hears, place_and_answer, place_ringing
from .test_reconnect_signaling import RECONNECT_EVENTS

pytestmark = pytest.mark.net


@pytest.mark.parametrize("exchange_cfg", [{"reconnect_grace": 15.0}], indirect=True)
async def test_signaling_and_media_lost_together(leaks, make_phone, netfault, exchange):
    alice = await make_phone("alice", tone=440, signaling_url=netfault.url)
    bob = await make_phone("bob", tone=660)
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    out = Events(outgoing, RECONNECT_EVENTS)
    inc = Events(incoming, RECONNECT_EVENTS)
    await hears(alice, 660)
    netfault.block()
    netfault.media.set(blackhole=True)
    await out.wait("reconnecting", 1)
    await out.wait("reconnecting", 2, timeout=5)  # media lost too, 3 s later
    assert [e.code for (e,) in out.all("reconnecting")] == [53001, 53405]
    seen = len(netfault.frames)
    netfault.restore()

    def resumed_then_reinvited() -> bool:  # media attempts wait for the resume (the wire)
        kinds = [(way, kind) for way, kind, _ in netfault.frames[seen:]]
        return ("down", "answer") in kinds and ("up", "reinvite") in kinds[
            kinds.index(("down", "answer")):]

    await until(resumed_then_reinvited, 5, what="the call resumed at the exchange")
    assert outgoing.status() is CallStatus.RECONNECTING  # media is still away
    netfault.media.set(blackhole=False)
    await out.wait("reconnected", timeout=5)
    assert out.names() == ["reconnecting", "reconnecting", "reconnected"]
    assert out.statuses() == ["reconnecting", "open"]
    assert outgoing.status() is CallStatus.OPEN
    assert inc.names() == [] and incoming.status() is CallStatus.OPEN
    await hears(alice, 660)
    await hears(bob, 440)
    await leaks.shut_down_and_check([alice, bob], netfault, exchange)


async def test_signaling_lost_while_the_caller_hears_ringing(leaks, make_phone, netfault,
                                                             exchange):
    alice = await make_phone("alice", signaling_url=netfault.url)
    bob = await make_phone("bob")
    outgoing, incoming, out, inc = await place_ringing(alice, bob)
    netfault.block()  # no reconnect token before the answer: the call cannot be resumed
    await out.wait("disconnect", timeout=3)
    assert out.names() == ["ringing", "error", "disconnect"]
    ((error,),) = out.all("error")
    assert error.code == 53001
    await inc.wait("cancel", timeout=3)  # the exchange ended the call with the caller's socket
    assert incoming.status() is CallStatus.CLOSED
    netfault.restore()
    await until(lambda: alice.device.state is DeviceState.REGISTERED, 5, what="registered")
    assert not exchange.calls.calls
    await leaks.shut_down_and_check([alice, bob], netfault, exchange)


async def test_signaling_lost_while_the_callee_rings(leaks, make_phone, netfault, exchange):
    alice = await make_phone("alice")
    bob = await make_phone("bob", signaling_url=netfault.url)
    outgoing, incoming, out, inc = await place_ringing(alice, bob)
    netfault.block()
    await inc.wait("cancel", timeout=3)
    assert inc.names() == ["error", "cancel"] and inc.all("error")[0][0].code == 53001
    (error,) = await out.wait("error", timeout=3)
    assert error.code == 31480  # no device of bob is left to answer
    await out.wait("disconnect")
    netfault.restore()
    await until(lambda: bob.device.state is DeviceState.REGISTERED, 5, what="registered")
    await leaks.shut_down_and_check([alice, bob], netfault, exchange)


@pytest.mark.parametrize("exchange_cfg", [{"reconnect_grace": 10.0}], indirect=True)
async def test_signaling_lost_during_accept(leaks, make_phone, netfault, exchange):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=660, signaling_url=netfault.url)
    outgoing, incoming, out, _ = await place_ringing(alice, bob)
    inc = Events(incoming, RECONNECT_EVENTS)
    accepting = incoming.accept()
    # Cut the moment the exchange has the answer: media is still being connected.
    await until(lambda: any(c.phase is Phase.ANSWERED for c in exchange.calls.calls), 5,
                what="the answer at the exchange")
    netfault.block()
    await inc.wait("reconnecting", timeout=3)
    await accepting
    await inc.wait("accept", timeout=5)  # media came up while signaling was away
    netfault.restore()
    await inc.wait("reconnected", timeout=5)
    assert sorted(inc.names()) == ["accept", "reconnected", "reconnecting"]
    assert inc.names()[-1] == "reconnected"
    assert inc.statuses() == ["connecting", "reconnecting", "open"]
    await out.wait("accept")
    await hears(alice, 660)
    await hears(bob, 440)
    await leaks.shut_down_and_check([alice, bob], netfault, exchange)


async def test_media_fault_while_ringing_heals_before_the_call_opens(leaks, make_phone,
                                                                   netfault, exchange):
    # No reconnecting before the call is up: ICE keeps checking (aioice retransmits for
    # ~8 s), so a short hole during ringing and accept only delays the call's opening.
    alice = await make_phone("alice", tone=440, signaling_url=netfault.url)
    bob = await make_phone("bob", tone=660)
    outgoing, incoming, out, _ = await place_ringing(alice, bob)
    out = Events(outgoing, RECONNECT_EVENTS)
    inc = Events(incoming, RECONNECT_EVENTS)
    netfault.media.set(blackhole=True)
    accepting = incoming.accept()
    await asyncio.sleep(1.5)  # the hole lasts through the answer
    assert outgoing.status() is CallStatus.RINGING  # answered, media not up yet
    netfault.media.set(blackhole=False)
    await accepting
    await out.wait("accept", timeout=8)
    assert out.names() == ["accept"] and inc.names() == ["accept"]
    await hears(alice, 660)
    await hears(bob, 440)
    await leaks.shut_down_and_check([alice, bob], netfault, exchange)


# --- the exchange process restarted ---------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _start_exchange_process(config_path, port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "piphone", "exchange", "--config", str(config_path),
        "--host", "127.0.0.1", "--port", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ})

    async def listening() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not await listening():
        assert process.returncode is None, "the exchange process exited"
        assert loop.time() < deadline, "the exchange process did not listen within 15 s"
        await asyncio.sleep(0.1)
    return process


async def test_exchange_restart_mid_call_ends_the_call_it_lost(leaks, make_phone,
                                                               exchange_cfg, exchange):
    path = exchange_cfg.path
    text = path.read_text().replace('# ice_addresses = ["192.168.1.20"]',
                                    'ice_addresses = ["127.0.0.1"]')
    # its own call log: the in-process exchange (the leak check's) holds the starter's
    text = text.replace('call_log = "exchange-calls.db"', 'call_log = "process.db"')
    # ws:// on loopback: the phones here do not load the starter's CA
    path.write_text("".join(line for line in text.splitlines(keepends=True)
                            if not line.startswith(("tls_cert", "tls_key", "tls_ca"))))
    port = _free_port()
    url = f"ws://127.0.0.1:{port}/signal"
    process = await _start_exchange_process(path, port)
    try:
        alice = await make_phone("alice", tone=440, signaling_url=url)
        bob = await make_phone("bob", tone=660, signaling_url=url)
        devents = Events(alice.device, DEVICE_EVENTS)
        outgoing, incoming, _, _ = await place_and_answer(alice, bob)
        out = Events(outgoing, RECONNECT_EVENTS)
        inc = Events(incoming, RECONNECT_EVENTS)
        await hears(alice, 660)
        process.send_signal(signal.SIGKILL)  # a crash: no hangup, no close frame
        await process.wait()
        await out.wait("reconnecting", timeout=3)
        process = await _start_exchange_process(path, port)
        for events, call in ((out, outgoing), (inc, incoming)):
            (error,) = await events.wait("error", timeout=10)
            assert error.code == 31005  # the new exchange does not know the call
            await events.wait("disconnect", timeout=3)
            assert events.names()[0] == "reconnecting" and events.names()[-2:] == [
                "error", "disconnect"]
            assert call.status() is CallStatus.CLOSED
        await devents.wait("registered", timeout=5)  # registered with the new process
        assert alice.device.state is DeviceState.REGISTERED
        # And calls work again through the new exchange.
        outgoing2, *_ = await place_and_answer(alice, bob)
        await hears(alice, 660)
        outgoing2.disconnect()
        await leaks.shut_down_and_check([alice, bob], None, exchange)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 10)
