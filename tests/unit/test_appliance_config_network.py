"""appliance/config.py, [account] keys of the network path (issue 13): edge as a name or a list,
ca_file, ice_servers (a TURN credential only in secrets.toml), network_traversal."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiortc.rtcicetransport import parse_stun_turn_uri

from piphone.appliance import config
from piphone.voice import tokens

from ..tlscert import TestCA
from .test_appliance_config import AC, SECRET, SK, error_of, expect, write

BASE = f"""\
[account]
identity = "alice"
account_sid = "{AC}"
api_key_sid = "{SK}"
"""


def load(tmp_path, extra: str, secrets_extra: str = ""):
    secrets = f'[account]\napi_key_secret = "{SECRET}"\n{secrets_extra}'
    return config.load(write(tmp_path, BASE + extra, secrets=secrets))


def test_the_twilio_way_has_no_url_and_takes_an_edge_name_or_a_list(tmp_path):
    cfg = load(tmp_path, "")
    assert cfg.account.signaling_url is None and cfg.account.edge == ("roaming",)
    assert cfg.account.ca_file is None and cfg.account.ice_servers == ()
    assert cfg.account.network_traversal is False
    assert load(tmp_path, 'edge = "dublin"\n').account.edge == ("dublin",)
    assert load(tmp_path, 'edge = ["frankfurt", "dublin", "roaming"]\n').account.edge == (
        "frankfurt", "dublin", "roaming")


@pytest.mark.parametrize("value, says", [
    ('"atlantis"', "'atlantis' is not an edge"),
    ('["dublin", "atlantis"]', "'atlantis' is not an edge"),
    ("[]", "at least one edge"),
    ('["dublin", "dublin"]', "names an edge twice"),
    ("3", "must be str or list, not int"),
])
def test_bad_edges(tmp_path, value, says):
    expect(error_of(tmp_path, BASE + f"edge = {value}\n"), line=5, key="account.edge", says=says)


def test_ca_file_is_for_a_wss_exchange_and_must_be_a_certificate(tmp_path):
    ca = TestCA.create(tmp_path / "ca")
    url = 'signaling_url = "wss://exchange.local:8089/signal"\n'
    cfg = load(tmp_path, url + 'ca_file = "ca/ca.pem"\n')  # relative to piphone.toml
    assert cfg.account.ca_file == str(ca.cert)
    expect(error_of(tmp_path, BASE + 'ca_file = "ca/ca.pem"\n'), line=5, key="account.ca_file",
           says="is for a wss:// signaling_url")
    expect(error_of(tmp_path, BASE + url.replace("wss", "ws") + 'ca_file = "ca/ca.pem"\n'),
           line=6, key="account.ca_file", says="is for a wss://")
    expect(error_of(tmp_path, BASE + url + 'ca_file = "nothere.pem"\n'), line=6,
           key="account.ca_file", says="nothere.pem: no such file")
    (tmp_path / "junk.pem").write_text("junk")
    expect(error_of(tmp_path, BASE + url + 'ca_file = "junk.pem"\n'), line=6,
           key="account.ca_file", says="junk.pem: not a PEM certificate")


def test_ice_servers_from_both_files_credentials_only_in_secrets(tmp_path):
    cfg = load(tmp_path, 'ice_servers = [{urls = "stun:stun.example.org:3478"}]\n',
               'ice_servers = [{urls = ["turn:turn.example.org:3478?transport=udp", '
               '"turns:turn.example.org:443?transport=tcp"], username = "u", '
               'credential = "hush-hush"}]\n')
    stun, turn = cfg.account.ice_servers
    assert stun == config.IceServer(("stun:stun.example.org:3478",))
    assert turn.urls[1] == "turns:turn.example.org:443?transport=tcp"
    assert (turn.username, turn.credential) == ("u", "hush-hush")
    assert "hush-hush" not in repr(cfg)
    for url in stun.urls + turn.urls:  # what the config lets through, aiortc takes
        parse_stun_turn_uri(url)


@pytest.mark.parametrize("entry, says", [
    ('{urls = "turn:t.example.org", username = "u", credential = "p"}',
     "server 1: a credential is a secret: put this server in secrets.toml"),
    ('{urls = "turn:t.example.org"}', "server 1: a TURN server needs username and credential"),
    ('{urls = "http://example.org"}', "'http://example.org' is not a stun:, turn: or turns:"),
    ('{urls = "stun:s.example.org?transport=udp"}', "is not a stun:"),
    ('{urls = "stun:s.example.org:port"}', "is not a stun:"),
    ('{url = "stun:s.example.org"}', "unknown key 'url'"),
    ('"stun:s.example.org"', "must be a table"),
    ('{urls = []}', "urls must be a stun:/turn: URL"),
])
def test_bad_ice_servers(tmp_path, entry, says):
    expect(error_of(tmp_path, BASE + f"ice_servers = [{entry}]\n"), line=5,
           key="account.ice_servers", says=says)


def test_a_bad_ice_server_in_secrets_names_that_file(tmp_path):
    message = error_of(tmp_path, BASE, secrets=f'[account]\napi_key_secret = "{SECRET}"\n'
                       'ice_servers = [{urls = "turn:t.example.org", username = "u"}]\n')
    expect(message, file="secrets.toml", line=3, key="account.ice_servers",
           says="needs username and credential")
    assert "(in secrets.toml)" not in message


def test_network_traversal_needs_the_api_key(tmp_path):
    assert load(tmp_path, "network_traversal = true\n").account.network_traversal is True
    token = tokens.mint(account_sid=AC, api_key_sid=SK, api_key_secret=SECRET, identity="alice")
    message = error_of(tmp_path, '[account]\nidentity = "alice"\nnetwork_traversal = true\n',
                       secrets=f'[account]\ntoken = "{token}"\n')
    expect(message, line=3, key="account.network_traversal", says="needs the API key")


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("line, secret", [
    ('edge = ["ashburn", "umatilla", "roaming"]', False),
    ('ice_servers = [{urls = "stun:stun.example.org:3478"}]', False),
    ('ice_servers = [{urls = "turn:turn.example.org:3478?transport=udp", username = "...", '
     'credential = "..."}]', True),
])
def test_the_documented_lines_load_as_written(tmp_path, line, secret):
    """What the README and the example files show is what loads."""
    where = ROOT / "systemd" / ("secrets.toml.example" if secret else "piphone.toml.example")
    assert line in (ROOT / "README.md").read_text() + where.read_text()
    if secret:
        cfg = load(tmp_path, "", line + "\n")
    else:
        cfg = load(tmp_path, line + "\n")
    assert cfg.account.edge[0] == "ashburn" or cfg.account.ice_servers
