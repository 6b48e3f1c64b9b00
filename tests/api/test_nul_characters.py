"""A NUL character anywhere in a request is the client's mistake: a clear 4xx on every database (PostgreSQL cannot
store one in text and used to answer 500), never a 500 and never a task that fails later."""

from __future__ import annotations

import base64
import json

import httpx
import pytest


@pytest.mark.parametrize(
    ("path", "answers"),
    [
        ("/v1/tasks/a%00b", {404, 422}),
        ("/v1/tasks/a%00b/result", {404, 422}),
        ("/v1/tasks/a%00b/subtitles", {404, 422}),
        ("/v1/tasks?language=en%00", {200, 422}),  # a filter that matches nothing, or refused: never a 500
    ],
)
async def test_a_nul_in_the_url_is_refused_or_matches_nothing(
    client: httpx.AsyncClient, path: str, answers: set[int]
) -> None:
    response = await client.get(path)
    assert response.status_code in answers, response.text
    if response.status_code == 200:
        assert response.json()["items"] == []


async def test_a_nul_in_a_cursor_is_refused(client: httpx.AsyncClient) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps({"c": "2026-01-01T00:00:00+00:00", "i": "a\u0000"}).encode())
    response = await client.get("/v1/tasks", params={"cursor": cursor.decode()})
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("field", ["file_url", "callback_url"])
async def test_a_nul_in_a_url_field_is_refused_at_creation(client: httpx.AsyncClient, field: str) -> None:
    body = {"file_url": "https://example.com/a.mp3", field: "https://example.com/a\u0000.mp3"}
    response = await client.post("/v1/tasks", json=body)
    assert response.status_code == 422, response.text
    assert "control characters" in response.json()["detail"]
    assert (await client.get("/v1/tasks")).json()["items"] == []
