"""voice/tls.py: the one place client TLS is built; refusals and the clock in words."""

from __future__ import annotations

import datetime
import logging
import ssl

import pytest

import piphone
from piphone.appliance import config as appliance_config
from piphone.voice import edges, tls

from ..tlscert import TestCA

NOW = datetime.datetime(2027, 3, 4, 5, 6, tzinfo=datetime.UTC)


def test_release_date_is_a_past_date_after_the_project_began():
    """A release date in the future would call every correct clock unset; one before the
    project began would make the check useless. Update it with __version__."""
    assert isinstance(piphone.RELEASE_DATE, datetime.date)
    assert datetime.date(2026, 11, 27) <= piphone.RELEASE_DATE <= datetime.date.today()


def test_a_clock_before_the_release_is_not_set():
    before = datetime.datetime.combine(piphone.RELEASE_DATE, datetime.time(),
                                       datetime.UTC) - datetime.timedelta(seconds=1)
    assert tls.clock_problem(before) == (
        f"clock not set (it says {before:%Y-%m-%d}; waiting for NTP)")
    on_the_day = before + datetime.timedelta(seconds=1)
    assert tls.clock_problem(on_the_day) is None
    assert tls.clock_problem() is None  # this machine's clock is set


def test_clock_problem_reads_the_injectable_clock(monkeypatch):
    monkeypatch.setattr(tls, "wall_clock", lambda: datetime.datetime(1970, 1, 1,
                                                                     tzinfo=datetime.UTC))
    assert tls.clock_problem() == "clock not set (it says 1970-01-01; waiting for NTP)"


def _verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    exc.verify_code, exc.verify_message = code, message
    return exc


@pytest.mark.parametrize("code, message, words", [
    (18, "self-signed certificate", "unknown CA (self-signed certificate)"),
    (19, "self-signed certificate in certificate chain", "unknown CA"),
    (20, "unable to get local issuer certificate", "unknown CA (unable to get local issuer"),
    (2, "unable to get issuer certificate", "unknown CA"),
    (62, "Hostname mismatch, certificate is not valid for 'x'.", "wrong host name (Hostname"),
    (64, "IP address mismatch", "wrong host name"),
    (10, "certificate has expired", "expired (this machine's clock says 2027-03-04 05:06 UTC"),
    (9, "certificate is not yet valid", "not yet valid (this machine's clock says 2027-03-04"),
    (26, "unsupported certificate purpose",
     "unsupported certificate purpose (OpenSSL error 26)"),
])
def test_refusals_in_words(code, message, words):
    text = tls.explain(_verify_error(code, message), "wss://voice-js.roaming.twilio.com/signal",
                       now=NOW)
    assert text.startswith("certificate of voice-js.roaming.twilio.com refused: ")
    assert words in text


def test_unknown_ca_says_what_to_do():
    text = tls.explain(_verify_error(18, "self-signed certificate"), "wss://10.0.0.2/signal")
    assert "ca_file" in text and "--ca-file" in text


def test_other_tls_failures_and_non_tls_ones():
    handshake = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    handshake.reason = "WRONG_VERSION_NUMBER"
    assert tls.explain(handshake, "wss://h/signal") == (
        "TLS handshake with h failed: WRONG_VERSION_NUMBER")
    assert tls.explain(ConnectionRefusedError(111, "refused"), "wss://h/signal") is None


def test_connect_options_give_wss_a_verified_context_and_ws_none():
    assert tls.connect_options("ws://127.0.0.1:8089/signal", None) == {}
    assert tls.connect_options("ws://127.0.0.1:8089/signal", ssl.create_default_context()) == {}
    (context,) = tls.connect_options("wss://voice-js.roaming.twilio.com/signal", None).values()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    given = ssl.create_default_context()
    assert tls.connect_options("https://eventgw.twilio.com/x", given) == {"ssl": given}


def test_the_default_context_honours_ssl_cert_file(tmp_path, monkeypatch):
    ca = TestCA.create(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert))
    monkeypatch.setenv("SSL_CERT_DIR", str(empty))
    trusted = tls.client_context().get_ca_certs()
    assert [dict(c["subject"][0])["commonName"] for c in trusted] == ["piphone test CA"]


def test_ca_file_trusts_that_ca_alone(tmp_path):
    ca = TestCA.create(tmp_path)
    context = tls.client_context(ca_file=ca.cert)
    assert len(context.get_ca_certs()) == 1
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


@pytest.mark.parametrize("content, says", [(None, "no such file"),
                                           ("not a certificate", "not a PEM certificate")])
def test_a_bad_ca_file_is_a_clear_error(tmp_path, content, says):
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_text(content)
    with pytest.raises(tls.TLSSetupError, match=f"CA file {path}: {says}"):
        tls.client_context(ca_file=path)


def test_insecure_checks_nothing_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, "piphone.voice.tls"):
        context = tls.client_context(insecure=True)
    assert context.verify_mode is ssl.CERT_NONE and not context.check_hostname
    assert "TLS certificate checks are OFF" in caplog.text


def test_edges_take_a_name_or_a_list_and_the_config_knows_the_same_names():
    assert edges.edge_list("dublin") == ("dublin",)
    assert edges.edge_list(["ashburn", "roaming"]) == ("ashburn", "roaming")
    with pytest.raises(ValueError, match="unknown edge 'atlantis'"):
        edges.edge_list(["roaming", "atlantis"])
    with pytest.raises(ValueError, match="at least one"):
        edges.edge_list([])
    assert set(edges.REGION_EDGES.values()) <= set(edges.EDGES)
    assert appliance_config.EDGES is edges.EDGES  # one list: the config checks the SDK's names
    assert [edges.twilio_signaling_url(e) for e in edges.edge_list(["sydney", "tokyo-ix"])] == [
        "wss://voice-js.sydney.twilio.com/signal", "wss://voice-js.tokyo-ix.twilio.com/signal"]


@pytest.mark.parametrize("payload, edge", [
    ({"region": "us1", "edge": "ashburn", "home": "us1"}, "ashburn"),
    ({"region": "ie1"}, "dublin"),
    ({"region": "US1-IX"}, "ashburn-ix"),
    ({"region": "local", "edge": "local"}, "local"),  # piphone's exchange
    ({"region": "xx9"}, "xx9"),
    ({}, None),
    ({"region": 5}, None),
])
def test_the_edge_a_connected_frame_names(payload, edge):
    assert edges.connected_edge(payload) == edge
