"""rtc_hooks' datagram filter on aioice's StunProtocol: DTLS and RTP only from the ICE peer.
(Coroutines: aioice's protocol objects need a running loop.)"""

from __future__ import annotations

import aioice.ice
from aioice.candidate import Candidate

from piphone.voice.rtc import hooks as rtc_hooks

DTLS = bytes([22, 0xFE, 0xFD]) + bytes(10)
RTP = bytes([0x80, 111]) + bytes(10)


def candidate(host: str, port: int) -> Candidate:
    return Candidate(foundation=f"{host}{port}", component=1, transport="udp", priority=1,
                     host=host, port=port, type="host")


def connection_with_peer():
    connection = aioice.ice.Connection(ice_controlling=False)
    received: list[bytes] = []
    connection.data_received = lambda data, component: received.append(data)
    protocol = aioice.ice.StunProtocol(connection)
    protocol.local_candidate = candidate("127.0.0.1", 40000)
    peer, other = candidate("127.0.0.1", 50000), candidate("127.0.0.1", 50001)
    connection._remote_candidates += [peer, other]
    return connection, protocol, received, peer


async def test_the_hook_is_in_place():
    rtc_hooks.check()


async def test_before_a_pair_is_chosen_only_remote_candidates_get_through():
    connection, protocol, received, _ = connection_with_peer()
    protocol.datagram_received(DTLS, ("127.0.0.2", 50000))  # not a candidate
    protocol.datagram_received(RTP, ("127.0.0.1", 50002))
    assert received == [] and rtc_hooks.dropped_datagrams(connection) == 2
    protocol.datagram_received(DTLS, ("127.0.0.1", 50000))
    protocol.datagram_received(RTP, ("127.0.0.1", 50001))
    assert received == [DTLS, RTP]


async def test_once_a_pair_is_chosen_only_its_peer_gets_through():
    connection, protocol, received, peer = connection_with_peer()
    connection._nominated[1] = aioice.ice.CandidatePair(protocol, peer)
    protocol.datagram_received(RTP, ("127.0.0.1", 50001))  # a candidate, not the pair
    protocol.datagram_received(RTP, ("127.0.0.1", 50000))
    assert received == [RTP]


async def test_an_empty_datagram_never_reaches_dtls_even_from_the_peer():
    connection, protocol, received, peer = connection_with_peer()
    connection._nominated[1] = aioice.ice.CandidatePair(protocol, peer)
    protocol.datagram_received(b"", ("127.0.0.1", 50000))
    assert received == []


async def test_stun_still_goes_to_aioice_from_anywhere():
    connection, protocol, received, _ = connection_with_peer()
    requests = []
    connection.request_received = lambda message, addr, proto: requests.append(addr)
    request = aioice.stun.Message(message_method=aioice.stun.Method.BINDING,
                                  message_class=aioice.stun.Class.REQUEST)
    protocol.datagram_received(bytes(request), ("127.0.0.9", 1234))  # aioice authenticates
    assert requests == [("127.0.0.9", 1234)] and received == []
