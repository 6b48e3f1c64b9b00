"""Crafted input gets a 422 naming the field, never a 500 (issue 12, items 7, 8 and 20)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from app.db.models import WorkerRecord
from app.schemas.tasks import DecodeOptions, TaskCreate, VadParameters
from app.services import workers
from app.settings import Settings
from tests.conftest import app_client, migrated_sqlite


@pytest.fixture
async def db_url(tmp_path: Path) -> str:
    """Request parsing: the database holds nothing these tests look at, so SQLite stands for all three."""
    return await migrated_sqlite(tmp_path)


ADMIN = {"Authorization": "Bearer root-secret-1"}
ALICE = {"Authorization": "Bearer alice-secret-1"}
BOB = {"Authorization": "Bearer bob-secret-11"}
KEYS = ["admin-ops:root-secret-1", "alice:alice-secret-1", "bob:bob-secret-11"]


def cursor_of(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    return [e["field"] for e in body["errors"]]


@pytest.mark.parametrize(
    "cursor",
    [
        cursor_of(["2026-01-01T00:00:00", "some-id"]),  # naive date
        cursor_of(["2026-01-01T00:00:00+00:00", None]),  # null id
        cursor_of(["0001-01-01T00:00:00+14:00", "x"]),  # out of range in UTC
        cursor_of({"a": 1}),
        cursor_of([1, 2, 3]),
    ],
)
async def test_a_crafted_cursor_is_refused(client: httpx.AsyncClient, cursor: str) -> None:
    assert fields(await client.get("/v1/tasks", params={"cursor": cursor})) == ["cursor"]


@pytest.mark.parametrize("name", ["created_after", "created_before"])
@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_a_date_outside_the_utc_range_is_refused(client: httpx.AsyncClient, name: str, value: str) -> None:
    assert fields(await client.get("/v1/tasks", params={name: value})) == [name]


@pytest.mark.parametrize("path", ["/v1/tasks", "/v1/tasks/tiktok"])
async def test_deeply_nested_json_is_refused(client: httpx.AsyncClient, path: str) -> None:
    body = '{"file_url": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = await client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert "nested" in response.json()["detail"]


async def test_only_an_admin_key_sees_the_task_ids_of_workers(
    make_settings: Callable[..., Settings], sessions: Any
) -> None:
    info = workers.WorkerInfo(
        id="h:1:a", host="h", pid=1, device="cpu", device_index=[0], compute_type="int8", concurrency=2
    )
    async with sessions() as session:
        await workers.register(session=session, info=info)
        await session.execute(update(WorkerRecord).values(running=["task-of-alice", "task-of-bob"]))
        await session.commit()
    async with app_client(make_settings(api_keys=KEYS)) as http:
        admin = (await http.get("/v1/workers", headers=ADMIN)).json()["items"][0]
        assert admin["running"] == ["task-of-alice", "task-of-bob"] and admin["running_count"] == 2
        for key in (ALICE, BOB):
            seen = (await http.get("/v1/workers", headers=key)).json()["items"][0]
            assert seen["running"] is None and seen["running_count"] == 2


# Item 20: every number and list is bounded at creation.
@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"temperature": [0.0] * 11}, "temperature"),
        ({"temperature": 1.5}, "temperature"),
        ({"clip_timestamps": [0, 1e400]}, "clip_timestamps"),
        ({"clip_timestamps": list(range(2001))}, "clip_timestamps"),
        ({"vad_parameters": {"min_silence_duration_ms": 10**400}}, "vad_parameters.min_silence_duration_ms"),
        ({"vad_parameters": {"min_speech_duration_ms": 10**12}}, "vad_parameters.min_speech_duration_ms"),
        ({"vad_parameters": {"speech_pad_ms": 10**9}}, "vad_parameters.speech_pad_ms"),
        ({"vad_parameters": {"max_speech_duration_s": 1e300}}, "vad_parameters.max_speech_duration_s"),
        ({"compression_ratio_threshold": 1e300}, "compression_ratio_threshold"),
        ({"log_prob_threshold": -1e300}, "log_prob_threshold"),
        ({"hallucination_silence_threshold": 1e300}, "hallucination_silence_threshold"),
        ({"beam_size": 21}, "beam_size"),
        ({"file_url": "http://example.com:99999/a.mp3"}, "file_url"),
        ({"callback_url": "http://example.com:99999/hook"}, "callback_url"),
    ],
)
async def test_out_of_range_options_are_refused(client: httpx.AsyncClient, options: dict[str, Any], field: str) -> None:
    body = json.dumps({"file_url": "https://example.com/a.mp3", **options})  # 1e400 goes as Infinity
    response = await client.post("/v1/tasks", content=body, headers={"Content-Type": "application/json"})
    assert any(f == field or f.startswith(f"{field}.") for f in fields(response)), response.text


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
async def test_non_finite_json_numbers_are_refused(client: httpx.AsyncClient, literal: str) -> None:
    body = '{"file_url": "https://example.com/a.mp3", "log_prob_threshold": ' + literal + "}"
    response = await client.post("/v1/tasks", content=body, headers={"Content-Type": "application/json"})
    assert fields(response) == ["log_prob_threshold"]


def _numeric_fields() -> list[tuple[type[Any], str]]:
    found = []
    for model in (TaskCreate, VadParameters):
        for name, info in model.model_fields.items():
            if any(t in str(info.annotation) for t in ("float", "int")):
                found.append((model, name))
    return found


@given(
    field=st.sampled_from(_numeric_fields()),
    value=st.sampled_from([math.nan, math.inf, -math.inf, "NaN", "inf", "-Infinity", "1e400"]),
    as_list=st.booleans(),
)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_non_finite_number_in_any_numeric_option_is_refused(
    field: tuple[type[Any], str], value: object, as_list: bool
) -> None:
    model, name = field
    given_value: object = [value] if as_list else value
    data: dict[str, Any] = {name: given_value}
    target = TaskCreate if model is not VadParameters else DecodeOptions
    if model is VadParameters:
        data = {"vad_parameters": data}
    with pytest.raises(ValueError, match=name):
        target.model_validate({"file_url": "https://example.com/a.mp3", **data} if target is TaskCreate else data)
