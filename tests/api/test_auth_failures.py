"""Guessing keys is slowed down: failed authentications are limited per client address."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from app.main import create_app
from app.settings import Settings

# What these tests drive (a foreign API's translation, fetching, signing) does not depend on the database kind; the
# queue, storage and API tests run on each (tests/integration, tests/e2e, tests/api/test_create_task.py and others).
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


async def test_failed_authentications_are_limited_per_address(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(api_keys=["alice:alice-secret-1"], auth_failures_per_minute=3))

    def client_from(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://test")

    async with app.router.lifespan_context(app), client_from("10.0.0.1") as guesser, client_from("10.0.0.2") as alice:
        # No key at all (a client not set up yet, behind the same proxy as everyone) is refused but is no guess.
        for _ in range(5):
            for header in ({"Authorization": "Basic x"}, {}):
                assert (await guesser.get("/v1/tasks", headers=header)).status_code == 401
        for header in ({"Authorization": "Bearer guess-0001"}, {"X-API-Key": "guess-0004"}, {"X-Token": "guess-0005"}):
            assert (await guesser.get("/v1/tasks", headers=header)).status_code == 401
        blocked = await guesser.get("/v1/tasks", headers={"Authorization": "Bearer guess-0002"})
        assert blocked.status_code == 429 and 0 < int(blocked.headers["Retry-After"]) <= 60
        assert "failed authentications" in blocked.json()["detail"]
        # Blocked means no key is checked from that address, not even a right one.
        assert (await guesser.get("/v1/tasks", headers={"Authorization": "Bearer alice-secret-1"})).status_code == 429
        openai_shape = await guesser.get("/v1/models", headers={"Authorization": "Bearer guess-0003"})
        assert openai_shape.status_code == 429 and "error" in openai_shape.json()
        # Another address is not affected.
        ok = await alice.get("/v1/tasks", headers={"Authorization": "Bearer alice-secret-1"})
        assert ok.status_code == 200
