"""reconnect.py and token_refresh.py without a network, on the virtual clock: settings, the
media backoff, the RTP watchdog, and the Device's token policy through its callables. (How a
call's reconnection moves the call is tests/unit/test_call_states.py.)"""

from __future__ import annotations

import asyncio
import random

import pytest

from piphone.voice import tokens
from piphone.voice.errors import TwilioError
from piphone.voice.reconnect import ReconnectSettings, RtpWatchdog
from piphone.voice.token_refresh import TokenRefresher

from ..virtual_clock import virtual_clock


def test_settings_are_checked_and_backoff_grows_to_its_cap():
    with pytest.raises(ValueError, match="rtp_timeout"):
        ReconnectSettings(rtp_timeout=0)
    with pytest.raises(ValueError, match="give_up"):
        ReconnectSettings(give_up=-1)
    s = ReconnectSettings(backoff_first=0.1, backoff_factor=2, backoff_cap=0.5,
                          backoff_jitter=0.2)
    backoff = s.media_backoff(random.Random(1))
    pauses = [backoff.next() for _ in range(8)]
    assert 0.08 <= pauses[0] <= 0.12 and 0.16 <= pauses[1] <= 0.24
    assert all(0.4 <= p <= 0.6 for p in pauses[3:])  # capped (with jitter)


@virtual_clock
async def test_watchdog_fires_once_when_packets_stop_and_never_while_they_flow():
    loop = asyncio.get_running_loop()
    count = [0]
    fired: list[tuple[int, float]] = []
    dog = RtpWatchdog(lambda: count[0], timeout=0.3, on_lost=lambda: fired.append(
        (count[0], loop.time())), interval=0.02)
    dog.start()
    for _ in range(30):  # 0.6 s of packets arriving: twice the timeout, no alarm
        count[0] += 1
        await asyncio.sleep(0.02)
    assert fired == [] and dog.running
    stopped = loop.time()
    await asyncio.sleep(2)
    ((packets, at),) = fired
    assert packets == 30 and 0.28 <= at - stopped <= 0.32 and not dog.running
    dog.stop()  # idempotent


def _token(ttl: int) -> str:
    return tokens.mint(account_sid="AC" + "0" * 32, api_key_sid="SK" + "0" * 32,
                       api_key_secret="s" * 32, identity="alice", ttl=ttl)


class Holder:
    """The Device's side: the one token, and what the refresher calls back."""

    def __init__(self, token: str, listening: bool = True) -> None:
        self.token = token
        self.asked = 0
        self.errors: list[TwilioError] = []
        self.listening = listening
        self.refresher: TokenRefresher | None = None

    def update(self, token: str) -> None:
        self.token = token
        assert self.refresher is not None
        self.refresher.token_changed()

    def ask(self) -> bool:
        self.asked += 1
        return self.listening

    def refresher_with(self, source=None) -> TokenRefresher:
        self.refresher = TokenRefresher(token=lambda: self.token, update=self.update,
                                        ask=self.ask, report=self.errors.append,
                                        source=source, margin=10, wait=5)
        return self.refresher


@virtual_clock
async def test_token_will_expire_goes_out_margin_seconds_before_the_ttl():
    holder = Holder(_token(600))
    refresher = holder.refresher_with()
    refresher.connected(60)
    await asyncio.sleep(49.9)
    assert holder.asked == 0
    await asyncio.sleep(0.2)
    assert holder.asked == 1
    refresher.connected(60)
    refresher.cancel()
    await asyncio.sleep(100)
    assert holder.asked == 1


@virtual_clock
async def test_an_expired_token_is_renewed_before_connecting_from_the_source():
    holder = Holder(_token(0))
    fresh = _token(600)

    async def source() -> str:
        await asyncio.sleep(1)
        return fresh

    refresher = holder.refresher_with(source)
    await refresher.before_connect()
    assert holder.token != fresh  # not armed: the first connect never renews
    refresher.connected(None)
    await refresher.before_connect()
    assert holder.token == fresh and holder.asked == 0


@virtual_clock
async def test_without_a_source_the_application_is_asked_once_per_token():
    loop = asyncio.get_running_loop()
    holder = Holder(_token(0))
    refresher = holder.refresher_with()
    refresher.connected(None)
    started = loop.time()
    loop.call_later(2, holder.update, _token(600))  # a handler that takes 2 s
    await refresher.before_connect()
    assert holder.asked == 1 and loop.time() - started == pytest.approx(2)
    stale = Holder(_token(0))
    refresher = stale.refresher_with()
    refresher.connected(None)
    started = loop.time()
    await refresher.before_connect()  # nobody updates: wait at most ``wait``
    await refresher.before_connect()  # the same token: not asked again
    assert stale.asked == 1 and loop.time() - started == pytest.approx(5)


@virtual_clock
async def test_a_failing_source_is_reported_not_raised():
    holder = Holder(_token(0))

    async def source() -> str:
        raise RuntimeError("vault unreachable")

    refresher = holder.refresher_with(source)
    refresher.connected(None)
    await refresher.before_connect()
    (error,) = holder.errors
    assert error.code == 20104 and "vault unreachable" in error.message
