"""What `serve` writes to stdout and stderr, with JSON logs: one JSON object a line, uvicorn's lines included."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.service import Service


def test_every_line_serve_prints_is_json(tmp_path: Path, model_cache: Path) -> None:
    service = Service(tmp_path, model_cache, env={"WHISPER_LOG_FORMAT": "json", "WHISPER_LOG_LEVEL": "INFO"})
    try:
        with httpx.Client(base_url=service.url, timeout=30) as http:
            assert http.get("/v1/tasks").status_code == 200
            assert http.get("/no-such-page").status_code == 404
    finally:
        assert service.stop() == 0
    lines = [line for line in Path(service.log.name).read_text().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records), records
    loggers = {r["logger"] for r in records}
    assert {"uvicorn.error", "uvicorn.access"} <= loggers, loggers  # startup, and each request
    assert any("GET /no-such-page" in r["message"] and "404" in r["message"] for r in records), records
