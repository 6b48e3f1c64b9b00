"""Download a media link to a temporary file, streamed, with a size cap and the outbound policy on every hop."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from app.errors import MediaFetchFailed, PageNotMedia, UploadTooLarge
from app.services.media import spool_to_file
from app.services.outbound import pin, resolve_checked

MAX_REDIRECTS = 5


TIMEOUT = httpx.Timeout(30.0, connect=10.0)


# Sent only to the host they were given for: a redirect elsewhere does not carry them.
CREDENTIALS = ("cookie", "authorization")


async def download(
    url: str,
    *,
    max_bytes: int,
    allowlist: Iterable[str] = (),
    directory: Path | None = None,
    headers: Mapping[str, str] | None = None,
) -> Path:
    """Fetch `url` into a temporary file; every redirect target is checked like the first URL, and each request
    connects to the address that was checked (no second DNS answer can redirect it). The caller bounds the total
    time (a per-read timeout alone lets a trickling server hold it)."""
    allow = list(allowlist)
    first_host = urlsplit(url).hostname
    async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            target = pin(url, (await resolve_checked(url, allowlist=allow))[0])
            sent = {
                k: v
                for k, v in (headers or {}).items()
                if k.lower() != "host" and (urlsplit(url).hostname == first_host or k.lower() not in CREDENTIALS)
            }
            try:
                async with client.stream(
                    "GET", target.url, headers={**sent, **target.headers}, extensions=target.extensions
                ) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise MediaFetchFailed(
                            f"Fetching the media URL returned HTTP {response.status_code}: check the link."
                        )
                    if response.headers.get("content-type", "").startswith(("text/html", "application/xhtml")):
                        raise PageNotMedia(url)
                    declared = int(response.headers.get("content-length") or 0)
                    if declared > max_bytes:
                        raise UploadTooLarge(f"The media at the URL is {declared} bytes; the limit is {max_bytes}.")
                    return await spool_to_file(response.aiter_bytes(1024 * 1024), limit=max_bytes, directory=directory)
            except httpx.HTTPError as exc:
                raise MediaFetchFailed(fetch_failure(exc, url)) from exc
    raise MediaFetchFailed(f"The media URL redirected more than {MAX_REDIRECTS} times.")


def fetch_failure(exc: httpx.HTTPError, url: str) -> str:
    """What went wrong fetching `url` and what to do, in words (httpx's own text is often empty or cryptic)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2] or "the media host"
    if isinstance(exc, httpx.ConnectTimeout):
        return f"Connecting to {host} timed out: check the URL and that the server is up and reachable from here."
    if isinstance(exc, httpx.ConnectError):
        return (
            f"Could not connect to {host} (refused, or no route): check the URL and that the server is up and "
            "reachable from this server."
        )
    if isinstance(exc, httpx.TimeoutException):
        return f"{host} stopped sending the media (no data for {TIMEOUT.read:.0f} s): try again later."
    if isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError):
        return (
            f"The connection to {host} dropped while the media was being read: try again, or check that the server "
            "sends the whole file."
        )
    return f"Fetching the media from {host} failed (HTTP protocol error): check the URL and try again."
