"""What a hostile party on the LAN tries against the media path (issue 14), on 127.0.0.0/8:
UDP from an address that is not the ICE peer, offers with hundreds of candidates, offers
aiortc chokes on, and hang-ups timed to catch the exchange mid-set-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from piphone.pcm import Silence
from piphone.voice import CallStatus
from piphone.voice.rtc import MediaSession, MediaSettings

from ..conftest import LOOPBACK, until
from .helpers import Events, hears, place_and_answer
from .leaks import open_peer_connections, open_udp_sockets
from .test_bad_input import raw  # noqa: F401  (the raw client fixture)
from .test_reconnect_signaling import RECONNECT_EVENTS

pytestmark = pytest.mark.net

CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ", re.I | re.M)
ATTACKER = "127.0.0.2"  # all of 127.0.0.0/8 is loopback: another host, as far as ICE knows
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux's value; Python 3.11 lacks the name
MAX_REMOTE_CANDIDATES = 24  # MediaSettings' default (checked below)


def dtls_alert(sequence: int) -> bytes:
    """A plaintext DTLS 1.2 record (epoch 0): fatal alert, handshake_failure."""
    return (bytes([21, 0xFE, 0xFD, 0, 0]) + sequence.to_bytes(6, "big")
            + bytes([0, 2, 2, 40]))


def junk_rtp(sequence: int) -> bytes:
    """An RTP packet (payload type 111, Opus) that no SRTP context made."""
    return struct.pack("!BBHII", 0x80, 111, sequence & 0xFFFF, sequence * 960, 0x1234) + bytes(80)


class Mallory(asyncio.DatagramProtocol):
    """A socket at 127.0.0.2 that sends to every media endpoint an SDP on the wire named."""

    def __init__(self, wire) -> None:
        self.wire = wire
        self.transport: asyncio.DatagramTransport | None = None
        self.sent = 0

    def targets(self) -> set[tuple[str, int]]:
        found = set()
        for _, _, payload in (*self.wire.sent, *self.wire.received):
            sdp = payload.get("sdp")
            if isinstance(sdp, str):
                found.update((host, int(port)) for host, port in CANDIDATE.findall(sdp))
        return found

    def send_all(self, packet: bytes) -> None:
        assert self.transport is not None
        for target in self.targets():
            self.transport.sendto(packet, target)
            self.sent += 1

    async def spray_alerts(self, interval: float = 0.001) -> None:
        sequence = 0
        while True:
            self.send_all(dtls_alert(sequence))
            sequence += 1
            await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def mallory_at(wire) -> AsyncIterator[Mallory]:
    loop = asyncio.get_running_loop()
    transport, mallory = await loop.create_datagram_endpoint(
        lambda: Mallory(wire), local_addr=(ATTACKER, 0))
    mallory.transport = transport
    try:
        yield mallory
    finally:
        transport.close()


async def transport_packets_received(media: MediaSession) -> int:
    stats = await media.pc.getStats()
    return sum(s.packetsReceived for s in stats.values() if s.type == "transport")


async def test_spoofed_dtls_alerts_during_set_up_and_mid_call_do_not_fail_the_call(
        make_phone, wire, exchange):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=660)
    async with mallory_at(wire) as mallory:
        spraying = asyncio.ensure_future(mallory.spray_alerts())
        try:
            outgoing, incoming, _, _ = await place_and_answer(alice, bob)
            out = Events(outgoing, RECONNECT_EVENTS)
            inc = Events(incoming, RECONNECT_EVENTS)
            await hears(alice, 660)
            await hears(bob, 440)
            # alice, bob and the exchange's two legs: every endpoint got alerts from set-up on
            assert len(mallory.targets()) == 4, mallory.targets()
            await asyncio.sleep(1.0)  # mid-call, alerts go on
        finally:
            spraying.cancel()
        assert outgoing.status() is CallStatus.OPEN and incoming.status() is CallStatus.OPEN
        assert out.names() == [] and inc.names() == [], (out.names(), inc.names())
        await hears(alice, 660)
        await hears(bob, 440)


async def test_rtp_and_empty_datagrams_from_another_address_are_dropped_before_dtls(
        make_phone, wire, exchange):
    alice = await make_phone("alice", tone=440)
    bob = await make_phone("bob", tone=660)
    outgoing, incoming, _, _ = await place_and_answer(alice, bob)
    out = Events(outgoing, RECONNECT_EVENTS)
    inc = Events(incoming, RECONNECT_EVENTS)
    await hears(alice, 660)
    (call,) = exchange.calls.calls
    legs = [call.caller.media.leg.media, call.callee.media.leg.media]
    async with mallory_at(wire) as mallory:
        before = [await transport_packets_received(leg) for leg in legs]
        injected = 500
        for sequence in range(injected):
            mallory.send_all(junk_rtp(sequence))
            if sequence % 50 == 0:
                await asyncio.sleep(0)
        mallory.send_all(b"")  # an empty datagram: aiortc's DTLS reads its first byte
        await asyncio.sleep(0.5)
        after = [await transport_packets_received(leg) for leg in legs]
    # 0.5 s of real media is ~25 packets (+ RTCP); the injected ones never reached DTLS
    grown = [a - b for a, b in zip(after, before, strict=True)]
    assert all(g < injected // 2 for g in grown), grown
    await hears(alice, 660)  # nothing injected is played; the call goes on
    await hears(bob, 440)
    assert out.names() == [] and inc.names() == [], (out.names(), inc.names())
    assert outgoing.status() is CallStatus.OPEN


# --- remote candidates -----------------------------------------------------------------------

def with_candidates(sdp: str, lines: list[str]) -> str:
    """The SDP with its candidates replaced by ``lines``."""
    kept = [line for line in sdp.splitlines()
            if not line.startswith(("a=candidate:", "a=end-of-candidates"))]
    return "\r\n".join(kept + lines + ["a=end-of-candidates"]) + "\r\n"


def fake_candidates(count: int, port: int) -> list[str]:
    return [f"a=candidate:{i} 1 udp {2130706431 - i} 127.0.{1 + i // 250}.{1 + i % 250} "
            f"{port} typ host" for i in range(count)]


class ProbeCounter:
    """A socket on 0.0.0.0:PORT that notes the destination address of every STUN packet."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        self.sock.bind(("0.0.0.0", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.packets = 0
        self.destinations: set[str] = set()
        asyncio.get_running_loop().add_reader(self.sock, self._read)

    def _read(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                data, ancillary, _, _ = self.sock.recvmsg(2048, socket.CMSG_SPACE(12))
                if data[:1] in (b"\x00", b"\x01"):  # a STUN request or indication
                    self.packets += 1
                for level, kind, value in ancillary:
                    if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                        self.destinations.add(socket.inet_ntoa(value[8:12]))

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock)
        self.sock.close()


async def test_an_offer_of_400_candidates_gets_at_most_a_few_dozen_probed(raw, exchange,  # noqa: F811
                                                                           caplog):
    client = await raw("mallory")
    counter = ProbeCounter()
    offerer = MediaSession(MediaSettings(ice_addresses=LOOPBACK), Silence())
    try:
        sdp = with_candidates(await offerer.offer(), fake_candidates(400, counter.port))
        with caplog.at_level(logging.INFO, logger="piphone"):
            await client.send("invite", callsid="TJSflood", sdp=sdp,
                              twilio={"params": "To=echo"})
            await client.expect("ringing")
            answer = await client.expect("answer")
            assert CANDIDATE.search(answer["sdp"])
            await asyncio.sleep(2.0)  # aioice starts a check every 20 ms: ~100 in 2 s
        (call,) = exchange.calls.calls
        transceiver = call.caller.media.leg.media.pc.getTransceivers()[0]
        held = transceiver.receiver.transport.transport.getRemoteCandidates()
        assert len(held) <= MAX_REMOTE_CANDIDATES
        assert len(counter.destinations) <= MAX_REMOTE_CANDIDATES, len(counter.destinations)
        assert 0 < counter.packets <= MAX_REMOTE_CANDIDATES * 8, counter.packets
        assert MediaSettings().max_remote_candidates == MAX_REMOTE_CANDIDATES
        dropped = [r for r in caplog.records if "candidates" in r.getMessage()
                   and "400" in r.getMessage()]
        assert len(dropped) == 1, [r.getMessage() for r in caplog.records]
    finally:
        counter.close()
        await offerer.close()


async def test_a_phone_offered_400_candidates_holds_at_most_a_few_dozen():
    """The phone's side: an invite's offer goes through the same edge (Call uses MediaSession)."""
    offerer = MediaSession(MediaSettings(ice_addresses=LOOPBACK), Silence())
    phone = MediaSession(MediaSettings(ice_addresses=LOOPBACK), Silence())
    try:
        sdp = with_candidates(await offerer.offer(), fake_candidates(400, 9))
        await phone.prepare_answer(sdp)
        transport = phone.pc.getTransceivers()[0].receiver.transport.transport
        assert 0 < len(transport.getRemoteCandidates()) <= MAX_REMOTE_CANDIDATES
    finally:
        await offerer.close()
        await phone.close()


# --- offers aiortc chokes on -------------------------------------------------------------------

async def offer_sdp() -> tuple[MediaSession, str]:
    session = MediaSession(MediaSettings(ice_addresses=LOOPBACK), Silence())
    return session, await session.offer()


async def test_an_offer_without_a_direction_line_is_answered_as_sendrecv(raw, exchange):  # noqa: F811
    client = await raw("mallory")
    session, sdp = await offer_sdp()
    try:
        assert "a=sendrecv" in sdp
        await client.send("invite", callsid="TJSnodir", sdp=sdp.replace("a=sendrecv\r\n", ""),
                          twilio={"params": "To=echo"})
        await client.expect("ringing")
        answer = await client.expect("answer", timeout=5)
        assert "a=sendrecv" in answer["sdp"]
        await session.apply_answer(answer["sdp"])
        await session.wait_connected(5)  # media flows both ways
        await client.send("hangup", callsid=answer["callsid"])
        await until(lambda: not exchange.calls.calls, 5, what="the call to end")
    finally:
        await session.close()


@pytest.mark.parametrize("bad", ["c=IN IP4 127.0.0.1:0", "c=IN IP4 not-an-address",
                                 "c=IN IP4", "c=IN IP9 127.0.0.1"])
async def test_an_offer_with_a_malformed_connection_address_is_refused_and_leaks_nothing(
        raw, exchange, bad):  # noqa: F811
    client = await raw("mallory")
    session, sdp = await offer_sdp()
    await session.close()
    bad_sdp = re.sub(r"^c=.*$", bad, sdp, flags=re.M)
    assert bad in bad_sdp
    await client.send("invite", callsid="TJSbadc", sdp=bad_sdp, twilio={"params": "To=echo"})
    payload = await client.expect("hangup", timeout=5)
    assert payload["error"]["code"] == 31100, payload
    assert "c=" in payload["error"]["message"], payload
    await until(lambda: not exchange.calls.calls, 5, what="the call to be gone")
    await until(lambda: not open_peer_connections(), 5,
                what=f"peer connections to close ({open_peer_connections()})")
    await client.still_serves()


# --- hang-ups and reinvites timed to catch the exchange mid-set-up ----------------------------

async def test_twenty_immediate_hangups_leave_no_udp_socket_open(make_phone, exchange):
    alice = await make_phone("alice")
    base = open_udp_sockets()
    for _ in range(20):
        call = await alice.device.connect({"To": "echo"})
        call.disconnect()
        await call.wait_closed()
    await until(lambda: not exchange.calls.calls, 5, what="every call to end")
    await until(lambda: open_udp_sockets() <= base, 5,
                what=f"UDP sockets to close ({open_udp_sockets()} open, {base} before)")
    await until(lambda: not open_peer_connections(), 5, what="peer connections to close")


async def test_callers_who_hang_up_at_once_give_the_ringing_phone_no_error(make_phone):
    """The callee's media is closed under its preparation when the cancel comes: that is no
    'malformed invite'. (Timing decides which rounds hit the window: 60 rounds do.)"""
    alice = await make_phone("alice")
    bob = await make_phone("bob")
    bob_events = Events(bob.device, ("error",))
    for round_ in range(60):
        call = await alice.device.connect({"To": "bob"})
        await asyncio.sleep(0.001 * (round_ % 20))
        call.disconnect()
        await call.wait_closed()
    await asyncio.sleep(0.5)  # the last cancels reach bob
    assert bob_events.all("error") == []


async def test_twenty_pairs_of_back_to_back_reinvites_leave_no_udp_socket_open(make_phone,
                                                                              exchange):
    alice = await make_phone("alice", tone=440)
    base = open_udp_sockets()
    devents = Events(alice.device, ("error",))
    call = await alice.device.connect({"To": "echo"})
    out = Events(call, RECONNECT_EVENTS)
    await out.wait("accept")
    for _ in range(20):
        sessions = [MediaSession(MediaSettings(ice_addresses=LOOPBACK), Silence())
                    for _ in range(2)]
        offers = [await s.offer() for s in sessions]
        # The second closes the first's media while it is being set up, or, when the first is
        # still under way, is refused (31005: one media restart at a time).
        for sdp in offers:
            alice.device._stream.send("reinvite", {"callsid": call.sid, "sdp": sdp})
        for session in sessions:
            await session.close()
    (leg,) = (leg for c in exchange.calls.calls for leg in (c.caller,) if leg is not None)
    await until(lambda: not leg.restarting, 5, what="the last media restart to settle")
    call.disconnect()
    await call.wait_closed()
    await until(lambda: not exchange.calls.calls, 5, what="the call to end")
    await until(lambda: open_udp_sockets() <= base, 5,
                what=f"UDP sockets to close ({open_udp_sockets()} open, {base} before)")
    await until(lambda: not open_peer_connections(), 5, what="peer connections to close")
    codes = {error.code for error, *_ in devents.all("error")}
    assert codes <= {31005}, devents.all("error")
