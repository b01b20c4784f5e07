"""`piphone exchange` for its administrator: --init-config (a config, a private CA and a
certificate), the phones' keys (add-phone, remove-phone, list-phones) and what each writes."""

from __future__ import annotations

import os
import pwd
import stat
import tomllib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from piphone import cli
from piphone.exchange import config as exchange_config
from piphone.exchange import phones, tls
from piphone.exchange.config import phone_keys_path


@pytest.fixture
def config(tmp_path):
    assert cli.main(["exchange", "--init-config", str(tmp_path / "exchange.toml")]) == 0
    return tmp_path / "exchange.toml"


def test_init_config_makes_a_ca_and_a_certificate_for_this_machine(config):
    cfg = exchange_config.load(config)
    files = tls.TlsFiles.beside(config)
    assert (cfg.tls_cert, cfg.tls_key, cfg.tls_ca) == (str(files.cert), str(files.key),
                                                       str(files.ca))
    for private in (config, files.key, files.ca_key):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    ca = x509.load_pem_x509_certificate(files.ca.read_bytes())
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.issuer == ca.subject
    ca.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                           ec.ECDSA(cert.signature_hash_algorithm))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    host = os.uname().nodename.split(".")[0]
    assert {"localhost", host, f"{host}.local"} <= set(names.get_values_for_type(x509.DNSName))
    assert "127.0.0.1" in map(str, names.get_values_for_type(x509.IPAddress))
    tls.server_context(cfg.tls_cert, cfg.tls_key)  # loads


@pytest.mark.parametrize("args", [["--name", "bad name"], ["--address", "300.1.1.1"]])
def test_init_config_refuses_a_name_or_address_a_certificate_cannot_hold(tmp_path, args,
                                                                          capsys):
    path = tmp_path / "exchange.toml"
    assert cli.main(["exchange", "--init-config", str(path), *args]) == 2
    assert "is not a" in capsys.readouterr().err and not path.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_init_config_gives_the_files_to_the_service_user(tmp_path, capsys):
    """As systemd/README.md shows it, with --owner (here `daemon`, a system account that
    exists on Debian, standing in for piphone); root still administers them afterwards."""
    path = tmp_path / "exchange.toml"
    assert cli.main(["exchange", "--init-config", str(path), "--owner", "daemon"]) == 0
    daemon = pwd.getpwnam("daemon").pw_uid
    for name in ("exchange.toml", "exchange-ca.key", "exchange-cert.key", "exchange-ca.pem"):
        assert (tmp_path / name).stat().st_uid == daemon, name
    assert cli.main(["exchange", "add-phone", "alice", "--config", str(path)]) == 0
    keys = tmp_path / "exchange-phones.toml"
    assert keys.stat().st_uid == daemon and stat.S_IMODE(keys.stat().st_mode) == 0o600


def test_add_phone_prints_what_the_phone_needs(config, capsys):
    capsys.readouterr()
    assert cli.main(["exchange", "add-phone", "alice", "--config", str(config),
                     "--url", "wss://exchange.lan:8089/signal"]) == 0
    out = capsys.readouterr().out
    (key,) = phones.read(phone_keys_path(exchange_config.load(config))).values()
    account = tomllib.loads(out[out.index("\n[account]\n"):out.index("# its secrets.toml")])
    assert account["account"] == {
        "identity": "alice", "signaling_url": "wss://exchange.lan:8089/signal",
        "ca_file": "exchange-ca.pem", "account_sid": exchange_config.load(config).account_sid,
        "api_key_sid": key.sid}
    assert f'api_key_secret = "{key.secret}"' in out
    assert "BEGIN CERTIFICATE" in out
    assert key.secret != exchange_config.load(config).api_key_secret


def test_add_phone_twice_remove_and_list(config, capsys):
    assert cli.main(["exchange", "add-phone", "alice", "--config", str(config)]) == 0
    assert cli.main(["exchange", "add-phone", "alice", "--config", str(config)]) == 2
    assert "already has a key" in capsys.readouterr().err
    assert cli.main(["exchange", "add-phone", "bob", "--config", str(config)]) == 0
    capsys.readouterr()
    assert cli.main(["exchange", "list-phones", "--config", str(config)]) == 0
    listed = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == ["alice", "bob"]
    assert cli.main(["exchange", "--config", str(config), "remove-phone", "alice"]) == 0
    assert cli.main(["exchange", "remove-phone", "alice", "--config", str(config)]) == 2
    assert "no phone 'alice'" in capsys.readouterr().err
    assert list(phones.read(phone_keys_path(exchange_config.load(config)))) == ["bob"]


@pytest.mark.parametrize("name", ["eve\nWATCHDOG=1", "a b", "x" * 122, ""])
def test_add_phone_refuses_what_is_not_an_identity(config, capsys, name):
    assert cli.main(["exchange", "add-phone", name, "--config", str(config)]) == 2
    assert "is not a client identity" in capsys.readouterr().err


def test_a_keys_file_edited_by_hand_is_checked_with_its_line(config):
    path = phone_keys_path(exchange_config.load(config))
    phones.add(path, "alice")
    text = path.read_text()
    path.write_text(text.replace('key_sid = "SK', 'key_sid = "XX'))
    with pytest.raises(exchange_config.ConfigError,
                       match=r'line 5: phones."alice".key_sid: must be SK and 32 hex'):
        phones.read(path)
    path.write_text(text.replace('secret = "', 'secret = 12 #'))
    with pytest.raises(exchange_config.ConfigError) as info:
        phones.read(path)
    assert "must be a string" in str(info.value)
    assert text.split('secret = "')[1][:20] not in str(info.value)
