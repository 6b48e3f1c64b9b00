"""Turning an uploaded body into stored-ready audio: spool to disk under the size limit, decode in a thread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from starlette.datastructures import UploadFile

from app.services.media import DecodedMedia, decode_for_storage, spool_to_file
from app.settings import Settings

Made = TypeVar("Made")


async def upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    """An uploaded file's bytes, 1 MiB at a time."""
    while chunk := await upload.read(1024 * 1024):
        yield chunk


async def in_thread(make: Callable[[], Made], *, discard: Callable[[Made], object]) -> Made:
    """`make()` in a worker thread. A thread cannot be stopped, so if the caller is cancelled meanwhile, what the
    thread makes is discarded (`discard(result)`, e.g. its temporary file deleted) once it is done."""
    running = asyncio.ensure_future(asyncio.to_thread(make))

    def orphaned(done: asyncio.Future[Made]) -> None:
        if not done.cancelled() and done.exception() is None:
            discard(done.result())

    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        running.add_done_callback(orphaned)
        raise


async def decode_upload(stream: AsyncIterator[bytes], settings: Settings) -> DecodedMedia:
    """Spool `stream` to a temporary file (413 past the limit), then decode it to 16 kHz mono Opus (caller deletes)."""
    source = await spool_to_file(stream, limit=settings.max_upload_bytes)
    try:
        return await in_thread(
            lambda: decode_for_storage(source, max_seconds=settings.max_audio_seconds, bitrate=settings.media_bitrate),
            discard=lambda audio: audio.path.unlink(missing_ok=True),
        )
    finally:
        source.unlink(missing_ok=True)
