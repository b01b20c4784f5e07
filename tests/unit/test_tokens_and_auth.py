import time
from dataclasses import replace

import jwt
import pytest

from piphone.exchange import auth
from piphone.exchange import config as exchange_config
from piphone.voice import tokens
from piphone.voice.errors import TwilioError


@pytest.fixture
def cfg(tmp_path):
    return exchange_config.load(exchange_config.write_starter(tmp_path / "x.toml"))


def test_minted_token_is_twilio_shaped(cfg):
    token = tokens.mint(identity="alice", ttl=120, **cfg.token_kwargs())
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256" and header["cty"] == "twilio-fpa;v=1"
    info = tokens.read(token)
    assert info.identity == "alice" and info.issuer == cfg.api_key_sid
    assert 110 < info.seconds_left() <= 120
    grant = auth.verify(token, cfg)
    assert grant.identity == "alice" and grant.incoming_allowed and 110 < grant.ttl() <= 120


def test_read_refuses_what_is_not_a_jwt():
    with pytest.raises(TwilioError) as info:
        tokens.read("not-a-token")
    assert info.value.code == 20101 and info.value.name == "AccessTokenInvalid"


def test_expired_token_is_31205(cfg):
    claims = jwt.decode(tokens.mint(identity="alice", ttl=60, **cfg.token_kwargs()),
                        options={"verify_signature": False})
    claims["exp"] = int(time.time()) - 60
    expired = jwt.encode(claims, cfg.api_key_secret, algorithm="HS256")
    with pytest.raises(TwilioError) as info:
        auth.verify(expired, cfg)
    assert info.value.code == 31205 and info.value.name == "JWTTokenExpiredError"


@pytest.mark.parametrize("change", ["secret", "issuer", "account", "identity", "garbage"])
def test_invalid_tokens_are_31204(cfg, change):
    kwargs = cfg.token_kwargs()
    if change == "secret":
        token = tokens.mint(identity="a", **{**kwargs, "api_key_secret": "x" * 32})
    elif change == "issuer":
        token = tokens.mint(identity="a", **{**kwargs, "api_key_sid": "SK" + "0" * 32})
    elif change == "account":
        token = tokens.mint(identity="a", **{**kwargs, "account_sid": "AC" + "0" * 32})
    elif change == "identity":
        claims = jwt.decode(tokens.mint(identity="a", **kwargs),
                            options={"verify_signature": False})
        claims["grants"].pop("identity")
        token = jwt.encode(claims, cfg.api_key_secret, algorithm="HS256")
    else:
        token = "a.b.c"
    with pytest.raises(TwilioError) as info:
        auth.verify(token, cfg)
    assert info.value.code == 31204


def test_none_algorithm_is_refused(cfg):
    claims = jwt.decode(tokens.mint(identity="a", **cfg.token_kwargs()),
                        options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(TwilioError) as info:
        auth.verify(unsigned, replace(cfg))
    assert info.value.code == 31204
