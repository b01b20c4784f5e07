"""appliance/offline.py: why the phone is not registered, from the Device's real errors."""

from __future__ import annotations

import errno
import socket
import ssl

import pytest

from piphone.appliance import offline
from piphone.voice.errors import TwilioError


def failed(exc: BaseException) -> TwilioError:
    """A connection failure as voice/signaling.py reports it."""
    return TwilioError(53000, f"cannot reach ws://x: {exc}", original_error=exc)


def wrapped(inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise OSError("Multiple exceptions") from exc
    except OSError as outer:
        return outer


@pytest.mark.parametrize("error, reason", [
    (TwilioError(20101, "invalid token"), offline.TOKEN_REFUSED),
    (TwilioError(20104, "expired"), offline.TOKEN_REFUSED),
    (TwilioError(20151, "authentication failed"), offline.TOKEN_REFUSED),
    (failed(OSError(errno.ENETUNREACH, "Network is unreachable")), offline.NO_NETWORK),
    (failed(OSError(errno.ENETDOWN, "Network is down")), offline.NO_NETWORK),
    (failed(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")),
     offline.NO_NETWORK),
    (failed(socket.gaierror(socket.EAI_NONAME, "Name or service not known")),
     offline.UNREACHABLE),
    (failed(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")),
     offline.UNREACHABLE),
    (failed(TimeoutError()), offline.UNREACHABLE),
    (failed(ssl.SSLCertVerificationError(1, "certificate verify failed")), offline.CERTIFICATE),
    (failed(wrapped(OSError(errno.ENETUNREACH, "Network is unreachable"))), offline.NO_NETWORK),
    (TwilioError(31005, "no answer to register within 10 s"), offline.UNREACHABLE),
], ids=["invalid", "expired", "auth", "no route", "net down", "no dns", "unknown host",
        "refused", "timeout", "certificate", "wrapped", "no answer"])
def test_reasons(error, reason):
    assert offline.reason_of(error) == reason


async def test_a_real_connection_with_no_route_is_no_network():
    """Inside the tests' loopback-only namespace there is no route off the machine."""
    with socket.socket() as sock:
        sock.setblocking(False)
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: never a real host
        except OSError as exc:
            if exc.errno == errno.EINPROGRESS:
                pytest.skip("this machine has a route: not inside the loopback namespace")
            assert offline.reason_of(failed(exc)) == offline.NO_NETWORK
