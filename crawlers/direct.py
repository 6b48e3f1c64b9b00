"""Download a direct media link to a temporary file, streamed, with a size cap and the outbound URL policy."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urljoin

import httpx

from app.errors import MediaFetchFailed, UploadTooLarge
from app.services.media import spool_to_file
from app.services.outbound import pin, resolve_checked

MAX_REDIRECTS = 5


class PageNotMedia(Exception):
    """The URL answered with a web page: hand it to yt-dlp."""


TIMEOUT = httpx.Timeout(30.0, connect=10.0)


async def download(url: str, *, max_bytes: int, allowlist: Iterable[str] = (), directory: Path | None = None) -> Path:
    """Fetch `url` into a temporary file; every redirect target is checked like the first URL, and each request
    connects to the address that was checked (no second DNS answer can redirect it)."""
    allow = list(allowlist)
    async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            target = pin(url, (await resolve_checked(url, allowlist=allow))[0])
            try:
                async with client.stream(
                    "GET", target.url, headers=target.headers, extensions=target.extensions
                ) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise MediaFetchFailed(f"Fetching the media URL returned HTTP {response.status_code}.")
                    if response.headers.get("content-type", "").startswith(("text/html", "application/xhtml")):
                        raise PageNotMedia(url)
                    declared = int(response.headers.get("content-length") or 0)
                    if declared > max_bytes:
                        raise UploadTooLarge(f"The media at the URL is {declared} bytes; the limit is {max_bytes}.")
                    return await spool_to_file(response.aiter_bytes(1024 * 1024), limit=max_bytes, directory=directory)
            except httpx.HTTPError as exc:
                raise MediaFetchFailed(f"Fetching the media URL failed: {exc}") from exc
    raise MediaFetchFailed(f"The media URL redirected more than {MAX_REDIRECTS} times.")
