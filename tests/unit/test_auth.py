"""API keys and rate limits."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from app.errors import RateLimited, Unauthorized
from app.services.auth import ANONYMOUS, Authenticator, KeyRing, PresentedKey, Principal, RateLimiter, presented_key
from app.settings import Settings, describe_error


def ring(**settings: object) -> KeyRing:
    return KeyRing.from_settings(Settings(**settings))  # type: ignore[arg-type]


def authenticate(keys: KeyRing, authorization: str | None = None, **headers: str) -> Principal:
    """The principal for these headers, with environment keys only (the database's are tests/api/test_keys.py's)."""
    presented = presented_key(
        authorization=authorization, x_api_key=headers.get("x_api_key"), x_token=headers.get("x_token")
    )
    return asyncio.run(Authenticator(keys, None, require_key=False).authenticate(presented))


def test_no_keys_means_anonymous_admin() -> None:
    keys = ring()
    assert not keys.enabled
    assert authenticate(keys) is ANONYMOUS and ANONYMOUS.scope is None
    assert authenticate(keys, "Bearer anything-at-all") is ANONYMOUS  # a client that always sends one still works


def test_no_keys_but_listening_beyond_loopback_refuses_everything() -> None:
    refusing = Authenticator(ring(), None, require_key=True)
    for presented in (None, PresentedKey("any-key-at-all", "X-Token")):
        with pytest.raises(Unauthorized):
            asyncio.run(refusing.authenticate(presented))


def test_named_unnamed_admin_and_seed_keys() -> None:
    keys = ring(
        api_keys=["alice:alice-secret", "plain-secret-1", "admin-ops:root-secret-9"], access_token="seed-token-1"
    )
    alice = authenticate(keys, "Bearer alice-secret")
    assert (alice.name, alice.admin, alice.scope) == ("alice", False, "alice")
    assert authenticate(keys, "Bearer plain-secret-1").name == "key2"
    admin = authenticate(keys, "bearer root-secret-9")
    assert admin.admin and admin.scope is None
    assert authenticate(keys, "Bearer seed-token-1").name == "default"


def test_x_api_key_and_x_token_carry_the_same_keys() -> None:
    keys = ring(api_keys=["alice:alice-secret"])
    assert authenticate(keys, x_api_key="alice-secret").name == "alice"
    assert authenticate(keys, x_token=" alice-secret ").name == "alice"
    assert authenticate(keys, "Basic dXNlcjpwdw==", x_token="alice-secret").name == "alice"  # Basic holds no key
    with pytest.raises(Unauthorized, match="sent in X-Token"):
        authenticate(keys, x_token="alice-secreT")
    # Authorization first, then X-API-Key, then X-Token.
    assert presented_key(authorization="Bearer a", x_api_key="b", x_token="c") == PresentedKey("a", "Authorization")
    assert presented_key(authorization=None, x_api_key="b", x_token="c") == PresentedKey("b", "X-API-Key")
    assert presented_key(authorization="Bearer  ", x_api_key=" ", x_token="") is None


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Basic alice-secret", "Bearer alice-secreT", "alice-secret"]
)
def test_anything_else_is_refused(header: str | None) -> None:
    with pytest.raises(Unauthorized) as info:
        authenticate(ring(api_keys=["alice:alice-secret"]), header)
    assert info.value.status_code == 401 and info.value.headers == {"WWW-Authenticate": "Bearer"}
    for name in ("Authorization: Bearer", "X-API-Key", "X-Token"):  # the message says how to send a key
        assert name in info.value.detail


def test_short_keys_fail_at_start() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        Settings(api_keys=["bob:short"])


def test_rate_limiter_per_key() -> None:
    limiter = RateLimiter(2)
    limiter.check("a")
    limiter.check("a")
    limiter.check("b")
    with pytest.raises(RateLimited) as info:
        limiter.check("a")
    assert 0 < int(info.value.headers["Retry-After"]) <= 60
    RateLimiter(0).check("a")  # off


def test_a_key_may_hold_colons_the_name_ends_at_the_first() -> None:
    keys = ring(api_keys=["bob:12345678:x", "carol:a:b:c:d:e:f"])
    assert authenticate(keys, "Bearer 12345678:x").name == "bob"
    assert authenticate(keys, "Bearer a:b:c:d:e:f").name == "carol"
    with pytest.raises(Unauthorized):
        authenticate(keys, "Bearer x")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (["alice:same-secret-1", "bob:same-secret-1"], "same key"),
        (["alice:same-secret-1", "same-secret-1"], "same key"),
        (["alice : spaced-secret-1"], "space"),
        (["alice:spaced secret-1"], "space"),
        (["alice:clé-secrète-1"], "ASCII"),
        (["alice:密钥密钥密钥密钥"], "ASCII"),
        (["bob:1234567"], "at least 8"),
    ],
)
def test_keys_that_could_never_match_or_clash_fail_at_start(keys: list[str], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(api_keys=keys)
    shown = describe_error(info.value) + str(info.value)
    assert "WHISPER_API_KEYS" in describe_error(info.value) and message in shown
    for item in keys:  # the key itself is never printed
        assert (item.partition(":")[2] or item).strip() not in shown


def test_the_access_token_may_not_repeat_a_key() -> None:
    with pytest.raises(ValidationError, match="same key"):
        Settings(api_keys=["alice:same-secret-1"], access_token="same-secret-1")


def test_failures_are_limited_per_address_before_the_key_is_checked() -> None:
    failures = RateLimiter(3)
    for _ in range(3):
        failures.refuse_if_full("10.0.0.1")
        failures.count("10.0.0.1")
    with pytest.raises(RateLimited) as info:
        failures.refuse_if_full("10.0.0.1")
    assert 0 < int(info.value.headers["Retry-After"]) <= 60
    failures.refuse_if_full("10.0.0.2")  # another address is not affected
