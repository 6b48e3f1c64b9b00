"""The server's own log (uvicorn's access lines included) holds no query-string values."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.service import Service


def test_access_log_hides_query_values(tmp_path: Path, model_cache: Path) -> None:
    service = Service(tmp_path, model_cache, "--workers", "0")
    try:
        secret = "s3cr3t-token-value"
        # Unknown parameters are refused (422), and the access log records the request all the same.
        assert httpx.get(f"{service.url}/health?token={secret}").status_code == 422
        assert httpx.get(f"{service.url}/v1/tasks?callback_url=https://h.example/cb?token%3D{secret}").status_code
    finally:
        service.stop()
    log = "\n".join(p.read_text() for p in tmp_path.glob("serve-*.log"))
    assert "/health?token=[redacted]" in log
    assert secret not in log
