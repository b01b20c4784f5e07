"""A token that expired while the phone was cut off (issue 8): renewed before the stream
reconnects, from the Device's token_source or a tokenWillExpire handler; a token the server
still refuses ends the waiting call with a clear error and no reconnect loop."""

from __future__ import annotations

import asyncio
import time

import pytest

from piphone.exchange import auth
from piphone.pcm import Recorder, Tone
from piphone.voice import CallStatus, Device, tokens
from piphone.voice.tokens import mint

from ..conftest import LOOPBACK, until
from .helpers import DEVICE_EVENTS, Events, hears, place_and_answer
from .test_reconnect_signaling import RECONNECT_EVENTS

pytestmark = pytest.mark.net

TTL = 4  # seconds: long enough to set up a call, short enough to expire during the outage


@pytest.fixture(autouse=True)
def no_leeway(monkeypatch):
    monkeypatch.setattr(auth, "LEEWAY", 0)  # expired means expired, without 5 s of skew


class ShortLivedPhone:
    """alice behind the proxy with a token that expires soon; bob straight to the exchange."""

    def __init__(self, exchange, netfault) -> None:
        self.exchange, self.netfault = exchange, netfault
        self.minted = 0

    def token(self, ttl: int = TTL) -> str:
        self.minted += 1
        return mint(identity="alice", ttl=ttl, **self.exchange.config.token_kwargs())

    def device(self, **options) -> Device:
        return Device(self.token(), signaling_url=self.netfault.url, ice_addresses=LOOPBACK,
                      audio_source=lambda: Tone(440),
                      audio_sink=lambda: Recorder(seconds=5), **options)


async def _call_then_outlive_the_token(alice_device, make_phone, netfault):
    await alice_device.register()

    class Alice:  # what helpers.place_and_answer and hears use
        device = alice_device
        recorders: list = []

    bob = await make_phone("bob", tone=660)
    outgoing, incoming, _, _ = await place_and_answer(Alice, bob)
    out = Events(outgoing, RECONNECT_EVENTS)
    netfault.block()
    await out.wait("reconnecting")
    expires = tokens.read(alice_device.token).expires_at
    await until(lambda: time.time() > expires + 0.3, TTL + 2, what="the token to expire")
    netfault.restore()
    return bob, outgoing, incoming, out


@pytest.mark.parametrize("exchange_cfg", [{"reconnect_grace": 15.0}], indirect=True)
@pytest.mark.parametrize("how", ["token_source", "tokenWillExpire"])
async def test_expired_token_is_renewed_before_reconnecting(leaks, make_phone, netfault,
                                                             exchange, how):
    rig = ShortLivedPhone(exchange, netfault)
    if how == "token_source":
        async def source() -> str:
            await asyncio.sleep(0)  # a real one would ask a server
            return rig.token(ttl=600)

        device = rig.device(token_source=source)
    else:
        # The SDK's way: tokenWillExpire fires (here 0.1 s before expiry, while cut off) and
        # the handler fetches a token and hands it over; the stream reconnects with it.
        device = rig.device(token_refresh_ms=100)
        device.on("tokenWillExpire", lambda d: d.update_token(rig.token(ttl=600)))
    devents = Events(device, DEVICE_EVENTS)
    bob, outgoing, incoming, out = await _call_then_outlive_the_token(device, make_phone,
                                                                      netfault)
    await out.wait("reconnected", timeout=5)
    assert out.names() == ["reconnecting", "reconnected"]
    assert outgoing.status() is CallStatus.OPEN and incoming.status() is CallStatus.OPEN
    assert rig.minted >= 2 and tokens.read(device.token).seconds_left() > 100
    assert devents.all("error") == []
    await devents.wait("registered", 2)
    await hears(bob, 440)
    await leaks.shut_down_and_check([type("P", (), {"device": device}), bob], netfault,
                                    exchange)


@pytest.mark.parametrize("exchange_cfg", [{"reconnect_grace": 15.0}], indirect=True)
async def test_a_refused_token_ends_the_waiting_call_without_a_loop(leaks, make_phone,
                                                                    netfault, exchange):
    rig = ShortLivedPhone(exchange, netfault)
    device = rig.device()  # no token_source and nobody handles tokenWillExpire
    devents = Events(device, DEVICE_EVENTS)
    bob, outgoing, incoming, out = await _call_then_outlive_the_token(device, make_phone,
                                                                      netfault)
    await out.wait("disconnect", timeout=5)
    assert out.names() == ["reconnecting", "error", "disconnect"]
    ((error,),) = out.all("error")
    assert error.code == 20104  # AccessTokenExpired, as the SDK reports 31205
    ((device_error, _),) = devents.all("error")
    assert device_error.code == 20104
    connections = netfault.connections
    await asyncio.sleep(1.0)  # quiet on purpose: a refused token must not bring retries
    assert netfault.connections == connections
    assert len(devents.all("error")) == 1
    # alice could not say so: the exchange ends bob's side when her leg's grace runs out.
    assert incoming.status() is CallStatus.OPEN and len(exchange.calls.calls) == 1
    await leaks.shut_down_and_check([type("P", (), {"device": device}), bob], netfault,
                                    exchange)
