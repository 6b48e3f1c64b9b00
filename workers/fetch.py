"""A URL or page task's media: fetched under the outbound policy, one total deadline, the size cap and the run's
stop event; decoded to the stored form (16 kHz mono Ogg); temporary files gone when it returns."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from app.errors import FetchTimedOut, MediaFetchFailed, PageNotMedia, TranscriptionInterrupted
from app.services import media
from app.settings import Settings
from crawlers.direct import download
from crawlers.guarded import Guard
from crawlers.ytdlp import extract_media

STOP_POLL_SECONDS = 0.1
"""How often a fetch looks at the run's stop event (cancel, delete, lost lease, shutdown)."""
PAGE_BYTES = 10 * 1024 * 1024
"""Cap on one page or API answer yt-dlp reads while extracting."""

T = TypeVar("T")


@asynccontextmanager
async def fetched_media(
    url: str, *, page: bool, meta: dict[str, Any], settings: Settings, stop: threading.Event
) -> AsyncIterator[media.DecodedMedia]:
    """The media at `url` (a direct link, or a page through yt-dlp when `page` or when the link answers with a web
    page), decoded for storage; `meta` gets what the page said about it. Raises our own errors only, and
    TranscriptionInterrupted as soon as `stop` is set."""
    guard = Guard(
        allowlist=tuple(settings.allowed_hosts),
        deadline=time.monotonic() + settings.fetch_timeout_seconds,
        max_bytes=PAGE_BYTES,
        stop=stop,
    )
    source = await _bounded(_fetch(url, page=page, meta=meta, settings=settings, guard=guard), guard=guard)
    decoded: media.DecodedMedia | None = None
    try:
        decoded = await asyncio.to_thread(
            media.decode_for_storage, source, max_seconds=settings.max_audio_seconds, bitrate=settings.media_bitrate
        )
        if stop.is_set():
            raise TranscriptionInterrupted()
        yield decoded
    finally:
        source.unlink(missing_ok=True)
        if decoded is not None:
            decoded.path.unlink(missing_ok=True)


async def _fetch(url: str, *, page: bool, meta: dict[str, Any], settings: Settings, guard: Guard) -> Path:
    if not page:
        try:
            return await download(url, max_bytes=settings.max_upload_bytes, allowlist=guard.allowlist)
        except PageNotMedia:
            pass
    cookies = settings.douyin_cookies_file if meta.get("platform") == "douyin" else None
    extracted = await asyncio.to_thread(
        extract_media, url, guard=guard, max_seconds=settings.max_audio_seconds, cookies_file=cookies
    )
    meta.update(extracted.meta)
    try:
        return await download(
            extracted.url, max_bytes=settings.max_upload_bytes, allowlist=guard.allowlist, headers=extracted.headers
        )
    except PageNotMedia as exc:
        raise MediaFetchFailed("The page's media link leads to another web page: give a direct media link.") from exc


async def _bounded(fetch: Awaitable[T], *, guard: Guard) -> T:
    """Await `fetch` until it ends, the deadline passes (FetchTimedOut) or the run stops (TranscriptionInterrupted);
    then tell a thread still working for it (yt-dlp) to give up at its next step."""
    work = asyncio.ensure_future(fetch)
    watcher = asyncio.ensure_future(_stopped(guard.stop))
    try:
        done, _ = await asyncio.wait(
            {work, watcher}, timeout=max(0.0, guard.deadline - time.monotonic()), return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        guard.aborted.set()
        for future in (work, watcher):
            if not future.done():
                future.cancel()
                with suppress(asyncio.CancelledError):
                    await future
    if work in done:
        return work.result()
    if work.done() and not work.cancelled() and isinstance(late := work.exception() or work.result(), Path):
        late.unlink(missing_ok=True)  # finished just as we gave up: nobody will use (or delete) it
    if watcher in done:
        raise TranscriptionInterrupted()
    raise FetchTimedOut()


async def _stopped(stop: threading.Event) -> None:
    while not stop.is_set():  # noqa: ASYNC110 (a threading.Event, set from threads too: nothing to await)
        await asyncio.sleep(STOP_POLL_SECONDS)
