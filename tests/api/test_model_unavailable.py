"""A model that cannot be loaded fails with the project's ModelUnavailable, never a 500 or the hub's raw text; and
WHISPER_ALLOW_MODEL_DOWNLOADS=false keeps requests to the bundled, configured and preloaded models."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.errors import ModelUnavailable
from app.settings import Settings
from tests.audio import clip
from tests.conftest import app_client, wait_for
from workers.engine import FasterWhisperEngine
from workers.models import ModelPool, PoolConfig


def offline_engine(cache_dir: Path) -> FasterWhisperEngine:
    """The real engine, never contacting the hub (local files only): a hub model not on disk cannot load."""
    return FasterWhisperEngine(ModelPool(PoolConfig(cache_dir=cache_dir, device="cpu", allow_downloads=False)))


def test_a_model_that_cannot_be_fetched_raises_model_unavailable(tmp_path: Path) -> None:
    pool = ModelPool(PoolConfig(cache_dir=tmp_path, device="cpu", allow_downloads=False))
    with pytest.raises(ModelUnavailable) as caught:
        pool.get("large-v2")
    assert caught.value.__cause__ is not None  # translated `from` the hub's error
    assert "'large-v2' could not be loaded" in caught.value.detail and "base, tiny.en" in caught.value.detail
    assert pool.loaded() == []


async def test_task_with_an_unloadable_model_fails_with_model_unavailable(
    client: httpx.AsyncClient, run_worker: Callable[..., Awaitable[Any]], tmp_path: Path
) -> None:
    await run_worker(offline_engine(tmp_path))
    with clip("jfk.wav").open("rb") as f:
        created = await client.post(
            "/v1/tasks", files={"file": ("jfk.wav", f, "audio/wav")}, data={"model": "large-v2"}
        )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]

    async def failed() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/v1/tasks/{task_id}")).json()
        return body if body["status"] == "failed" else None

    task = await wait_for(failed)
    assert task["error"]["type"] == "ModelUnavailable"
    assert "'large-v2' could not be loaded" in task["error"]["message"] and "Hub" not in task["error"]["message"]


async def test_openai_route_answers_an_unloadable_model_with_503(
    client: httpx.AsyncClient, run_worker: Callable[..., Awaitable[Any]], tmp_path: Path
) -> None:
    await run_worker(offline_engine(tmp_path))
    with clip("jfk.wav").open("rb") as f:
        response = await client.post(
            "/v1/audio/transcriptions", files={"file": ("jfk.wav", f, "audio/wav")}, data={"model": "large-v2"}
        )
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "ModelUnavailable" and error["type"] == "server_error"
    assert "base, tiny.en" in error["message"]


async def test_without_downloads_only_bundled_configured_and_preloaded_models_are_offered(
    make_settings: Callable[..., Settings], sessions: Any
) -> None:
    settings = make_settings(allow_model_downloads=False, extra_models=["/models/custom"], preload_models=["small"])
    async with app_client(settings) as client:
        refused = await client.post(
            "/v1/tasks",
            content=clip("jfk.wav").read_bytes(),
            params={"model": "large-v2"},
            headers={"Content-Type": "audio/wav"},
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["type"].endswith("UnknownModel")
        assert "base, tiny.en, /models/custom, small" in refused.json()["detail"]
        for model in ("base", "small"):
            accepted = await client.post(
                "/v1/tasks",
                content=clip("jfk.wav").read_bytes(),
                params={"model": model},
                headers={"Content-Type": "audio/wav"},
            )
            assert accepted.status_code == 201, accepted.text
        listed = (await client.get("/v1/models")).json()
        assert "large-v2" not in str(listed)
