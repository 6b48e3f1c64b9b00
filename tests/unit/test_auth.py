"""API keys and rate limits."""

from __future__ import annotations

import pytest

from app.services.auth import ANONYMOUS, KeyRing, RateLimited, RateLimiter, Unauthorized
from app.settings import Settings


def ring(**settings: object) -> KeyRing:
    return KeyRing.from_settings(Settings(**settings))  # type: ignore[arg-type]


def test_no_keys_means_anonymous_admin() -> None:
    keys = ring()
    assert not keys.enabled
    assert keys.authenticate(None) is ANONYMOUS and ANONYMOUS.scope is None


def test_named_unnamed_admin_and_seed_keys() -> None:
    keys = ring(
        api_keys=["alice:alice-secret", "plain-secret-1", "admin-ops:root-secret-9"], access_token="seed-token-1"
    )
    alice = keys.authenticate("Bearer alice-secret")
    assert (alice.name, alice.admin, alice.scope) == ("alice", False, "alice")
    assert keys.authenticate("Bearer plain-secret-1").name == "key2"
    admin = keys.authenticate("bearer root-secret-9")
    assert admin.admin and admin.scope is None
    assert keys.authenticate("Bearer seed-token-1").name == "default"


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Basic alice-secret", "Bearer alice-secreT", "alice-secret"]
)
def test_anything_else_is_refused(header: str | None) -> None:
    with pytest.raises(Unauthorized) as info:
        ring(api_keys=["alice:alice-secret"]).authenticate(header)
    assert info.value.status_code == 401 and info.value.headers == {"WWW-Authenticate": "Bearer"}


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
