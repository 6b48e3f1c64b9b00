"""Log lines never hold query-string values or URL passwords (tokens, presigned signatures)."""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator

import httpx
import pytest
import uvicorn.config

from app import logs
from app.logs import redact_key_headers, redact_urls

SECRETS = ("s3cr3t-token-value", "abcdef0123456789sig", "hunter2pw")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "POST https://hooks.example/cb?token=s3cr3t-token-value&id=7 done",
            "POST https://hooks.example/cb?token=[redacted]&id=[redacted] done",
        ),
        (
            '"GET /v1/tasks?file_url=https%3A%2F%2Fb.example%2Fa.mp3%3FX-Amz-Signature%3Dabc HTTP/1.1" 201',
            '"GET /v1/tasks?file_url=[redacted] HTTP/1.1" 201',
        ),
        ("fetch 'https://u:hunter2pw@m.example/a.mp3' failed", "fetch 'https://u:[redacted]@m.example/a.mp3' failed"),
        ("https://media.example/a.mp3#t=10 and /health", "https://media.example/a.mp3#t=10 and /health"),
        ("https://x.example/p?flag", "https://x.example/p?[redacted]"),
        ("task 3f2a: completed in 2.5 s (a=1&b=2 is no URL)", "task 3f2a: completed in 2.5 s (a=1&b=2 is no URL)"),
    ],
)
def test_redact_urls(text: str, expected: str) -> None:
    assert redact_urls(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("X-Token: wsk_k3y", "X-Token: [redacted]"),
        ("x-api-key=wsk_k3y", "x-api-key=[redacted]"),
        ("Authorization: Bearer wsk_k3y", "Authorization: Bearer [redacted]"),
        ("{'x-token': 'wsk_k3y', 'host': 'a'}", "{'x-token': '[redacted]', 'host': 'a'}"),
        ('Headers({"x-api-key": "wsk_k3y"})', 'Headers({"x-api-key": "[redacted]"})'),
        ('[(b"authorization", b"Bearer wsk_k3y")]', '[(b"authorization", b"Bearer [redacted]")]'),
        ("send it as X-API-Key or X-Token, as you like", "send it as X-API-Key or X-Token, as you like"),
    ],
)
def test_redact_key_headers(text: str, expected: str) -> None:
    assert redact_key_headers(text) == expected


def test_a_logged_request_shows_no_key_in_any_header(json_logs: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", "json")
    request = httpx.Request("GET", "http://a.example/", headers={"X-Token": "wsk_k3y1", "X-API-Key": "wsk_k3y2"})
    logging.getLogger("app").warning("headers %s, raw %r", request.headers, request.headers.raw)
    logging.getLogger("app").warning("Authorization: Bearer wsk_k3y3")
    out = json_logs.readouterr().err
    assert out.count("[redacted]") == 5 and "wsk_k3y" not in out, out


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """The service's JSON log on stderr (configured by the test itself: stderr is replaced per test phase)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield capsys
    root.handlers[:] = handlers
    root.setLevel(level)


def test_httpx_request_lines_hide_query_values(json_logs: pytest.CaptureFixture[str], media_server: str) -> None:
    logs.configure("INFO", "json")
    url = f"{media_server}/jfk.wav?token={SECRETS[0]}&X-Amz-Signature={SECRETS[1]}"
    assert httpx.get(url).status_code == 404  # the path with a query is not served; the request line is logged
    # (The test server's own lines are not JSON; they are not ours.)
    lines = [json.loads(line) for line in json_logs.readouterr().err.splitlines() if line.startswith("{")]
    requests = [line["message"] for line in lines if line["logger"] == "httpx"]
    assert requests and "token=[redacted]" in requests[0] and "X-Amz-Signature=[redacted]" in requests[0]
    assert not any(secret in str(lines) for secret in SECRETS)


def test_tracebacks_hide_query_values(json_logs: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", "json")
    request = httpx.Request("GET", f"https://u:{SECRETS[2]}@media.example/a.mp3?token={SECRETS[0]}")
    try:
        httpx.Response(403, request=request).raise_for_status()
    except httpx.HTTPStatusError:
        logging.getLogger("workers.fetch").exception("fetching %s failed", request.url)
    out = json_logs.readouterr().err
    assert "HTTPStatusError" in out and "token=[redacted]" in out
    assert not any(secret in out for secret in SECRETS)


def test_json_lines_carry_no_terminal_colour_copy(json_logs: pytest.CaptureFixture[str]) -> None:
    """uvicorn passes `color_message` (the message with ANSI codes) as an extra; a JSON line has no use for it.
    uvicorn's own logging set-up (as an in-process server applies it) does not keep its lines away from ours."""
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    logs.configure("INFO", "json")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42, extra={"color_message": "\x1b[36m%d"})
    [line] = [json.loads(line) for line in json_logs.readouterr().err.splitlines() if line.startswith("{")]
    assert line["message"] == "Started server process [42]" and "color_message" not in line
