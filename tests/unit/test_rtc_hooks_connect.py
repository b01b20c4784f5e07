"""Two races with close() (voice/rtc/hooks.py): aioice's connect() must not start consent checks
that run for ever on a connection closed while it connects, and a peer connection closed
while it connects must not keep RTP/RTCP loops; check() names either hook when it is gone."""

from __future__ import annotations

import asyncio

import aioice.ice
import pytest

from piphone.voice.rtc import hooks as rtc_hooks


def test_the_hook_is_installed():
    rtc_hooks.check()
    assert aioice.ice.Connection.connect is rtc_hooks._connect_unless_closed


async def test_a_connection_closed_while_it_connects_fails_and_checks_no_consent(monkeypatch):
    connection = aioice.ice.Connection(ice_controlling=True)
    forever = asyncio.Event()

    async def completes_after_close(self):
        # what aioice does when close() comes during connect()'s last 20 ms sleep: the check
        # list had completed, so connect() returns and starts consent checks
        await self.close()
        self._query_consent_task = asyncio.create_task(forever.wait())

    monkeypatch.setattr(rtc_hooks, "_original_connect", completes_after_close)
    with pytest.raises(ConnectionError, match="closed while connecting"):
        await connection.connect()
    assert connection._query_consent_task is None
    await asyncio.sleep(0)
    assert all(t.done() for t in asyncio.all_tasks() if t is not asyncio.current_task())


async def test_an_open_connection_keeps_its_consent_checks(monkeypatch):
    connection = aioice.ice.Connection(ice_controlling=True)
    forever = asyncio.Event()

    async def completes(self):
        self._query_consent_task = asyncio.create_task(forever.wait())

    monkeypatch.setattr(rtc_hooks, "_original_connect", completes)
    await connection.connect()
    task = connection._query_consent_task
    assert task is not None and not task.done()
    task.cancel()


async def test_stop_after_close_stops_what_a_racing_connect_started():
    """aiortc's close() stops senders and receivers before their transports; a connect that
    completes in between starts their loops. MediaSession.close stops them again."""
    from aiortc import RTCPeerConnection

    from piphone.pcm import Silence
    from piphone.voice.rtc.tracks import PcmTrack

    pc = RTCPeerConnection()
    pc.addTrack(PcmTrack(Silence()))
    await pc.close()
    sender = pc.getTransceivers()[0].sender
    stopped = []

    async def stop():  # what a sender started after close() must be: stopped once more
        stopped.append(sender)

    sender.stop = stop
    await rtc_hooks.stop_after_close(pc)
    assert stopped == [sender]


@pytest.mark.parametrize("cls", ["RTCRtpSender", "RTCRtpReceiver"])
def test_check_names_a_stop_that_no_longer_stops_its_loops(monkeypatch, cls):
    import aiortc

    async def stop(self):  # an upgrade that stops differently: stopping twice may not hold
        pass

    monkeypatch.setattr(getattr(aiortc, cls), "stop", stop)
    with pytest.raises(rtc_hooks.HookMissing, match=f"aiortc.{cls}.stop .*stop_after_close"):
        rtc_hooks.check()


def test_check_names_the_connect_hook_when_aioice_changed(monkeypatch):
    async def connect(self):
        pass

    monkeypatch.setattr(aioice.ice.Connection, "connect", connect)
    with pytest.raises(rtc_hooks.HookMissing, match="Connection.connect"):
        rtc_hooks.check()
