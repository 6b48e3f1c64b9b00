"""The outbound URL policy."""

from __future__ import annotations

import pytest

from app.errors import URLNotAllowed
from app.services.outbound import resolve_checked


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.mp3",
        "http://localhost:8080/a.mp3",
        "http://[::1]/a.mp3",
        "http://[::ffff:127.0.0.1]/a.mp3",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/a.mp3",
        "http://2130706433/a.mp3",
        "file:///etc/passwd",
        "ftp://example.com/a.mp3",
    ],
)
async def test_non_public_and_non_http_urls_are_refused(url: str) -> None:
    with pytest.raises(URLNotAllowed):
        await resolve_checked(url)


async def test_allowlist_admits_loopback() -> None:
    assert [str(a) for a in await resolve_checked("http://127.0.0.1:9/x", allowlist=["127.0.0.0/8"])] == ["127.0.0.1"]
    assert await resolve_checked("http://localhost:9/x", allowlist=["localhost"])
