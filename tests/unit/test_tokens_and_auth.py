import time
from dataclasses import replace

import jwt
import pytest

from piphone.errors import InvalidArgumentError
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


# --- grants, lifetimes and identities (issue 14) ------------------------------------------------
def signed(cfg, **changes) -> str:
    """A token for alice from the exchange's key, with claims changed (None: removed)."""
    claims = jwt.decode(tokens.mint(identity="alice", **cfg.token_kwargs()),
                        options={"verify_signature": False})
    for key, value in changes.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return jwt.encode(claims, cfg.api_key_secret, algorithm="HS256",
                      headers={"cty": "twilio-fpa;v=1"})


def refusal(cfg, token) -> TwilioError:
    with pytest.raises(TwilioError) as info:
        auth.verify(token, cfg)
    return info.value


def test_a_token_that_lives_a_century_is_refused_as_too_long(cfg):
    now = int(time.time())
    error = refusal(cfg, signed(cfg, nbf=now, exp=now + 100 * 365 * 86400))
    assert error.code == 31207 and error.name == "JWTTokenExpirationTooLongError"
    # Measured from the earliest start: an old iat cannot stretch a fresh-looking nbf.
    assert refusal(cfg, signed(cfg, iat=now - 86400, nbf=now, exp=now + 60)).code == 31207


def test_a_token_lives_at_most_24_hours_as_at_twilio(cfg):
    now = int(time.time())
    assert auth.verify(signed(cfg, nbf=now, exp=now + 86400), cfg).identity == "alice"
    assert refusal(cfg, signed(cfg, nbf=now, exp=now + 86401)).code == 31207
    assert auth.verify(signed(cfg, nbf=None, iat=now, exp=now + 600), cfg).ttl() > 590


@pytest.mark.parametrize("changes", [
    {"nbf": None, "iat": None},  # no start: a lifetime cannot be told
    {"nbf": "0"},  # a string where a number goes
    {"exp": "99999999999"},
    {"nbf": True},
    {"nbf": int(time.time()) + 3600},  # not valid yet
    {"iat": int(time.time()) + 3600},
])
def test_a_token_without_a_sane_start_is_refused(cfg, changes):
    assert refusal(cfg, signed(cfg, **changes)).code == 31204


@pytest.mark.parametrize("identity", [
    "eve\nWATCHDOG=trigger", "eve\r\nINFO forged line", "   ", " alice", "alice bob",
    "a" * 122, "client:alice", "alice\x00", "\u202eecila", "caf\u00e9", "\ud800",
])
def test_a_token_for_an_identity_that_is_not_a_client_identity_is_refused(cfg, identity):
    claims = jwt.decode(tokens.mint(identity="alice", **cfg.token_kwargs()),
                        options={"verify_signature": False})
    claims["grants"]["identity"] = identity
    try:
        token = jwt.encode(claims, cfg.api_key_secret, algorithm="HS256")
    except UnicodeEncodeError:  # a lone surrogate cannot even be signed: send it as raw text
        token = tokens.mint(identity="alice", **cfg.token_kwargs())[:-4] + identity
    error = refusal(cfg, token)
    assert error.code == 31204
    assert "\n" not in error.message and "WATCHDOG" not in error.message


def test_the_longest_and_widest_identities_twilio_takes_are_accepted(cfg):
    for identity in ("a" * 121, "alice_2", "user@example.com", "+15551234567", "desk-1.b"):
        token = tokens.mint(identity=identity, **cfg.token_kwargs())
        assert auth.verify(token, cfg).identity == identity


@pytest.mark.parametrize("identity", ["eve\nWATCHDOG=trigger", "", " ", "a" * 122, "a:b"])
def test_mint_refuses_to_make_a_token_for_a_bad_identity(cfg, identity):
    with pytest.raises(InvalidArgumentError, match="identity must be"):
        tokens.mint(identity=identity, **cfg.token_kwargs())


@pytest.mark.parametrize("ttl", [86401, 100 * 365 * 86400, 3600.5])
def test_mint_refuses_a_lifetime_over_24_hours(cfg, ttl):
    with pytest.raises(InvalidArgumentError, match="ttl must be"):
        tokens.mint(identity="alice", ttl=ttl, **cfg.token_kwargs())


def test_grants_say_what_a_token_may_do(cfg):
    both = auth.verify(tokens.mint(identity="a", **cfg.token_kwargs()), cfg)
    assert both.incoming_allowed and both.outgoing_allowed
    outgoing_only = auth.verify(
        tokens.mint(identity="a", incoming_allow=False, **cfg.token_kwargs()), cfg)
    assert not outgoing_only.incoming_allowed and outgoing_only.outgoing_allowed
    claims = jwt.decode(tokens.mint(identity="a", **cfg.token_kwargs()),
                        options={"verify_signature": False})
    del claims["grants"]["voice"]  # a token for another product: no voice grant at all
    other = auth.verify(jwt.encode(claims, cfg.api_key_secret, algorithm="HS256"), cfg)
    assert not other.incoming_allowed and not other.outgoing_allowed
    claims["grants"]["voice"] = {"incoming": {"allow": "yes"}}  # only true is true
    assert not auth.verify(jwt.encode(claims, cfg.api_key_secret, algorithm="HS256"),
                           cfg).incoming_allowed


@pytest.mark.parametrize("token", ["\ud800.\ud800.\ud800", "x" * 9000, "a.b", "..", "é.é.é"])
def test_a_token_that_is_not_even_text_a_jwt_can_hold_is_31204(cfg, token):
    assert refusal(cfg, token).code == 31204
