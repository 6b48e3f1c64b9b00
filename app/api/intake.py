"""Turning an uploaded body into stored-ready audio: spool to disk under the size limit, decode in a thread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.datastructures import UploadFile

from app.services.media import DecodedMedia, decode_for_storage, spool_to_file
from app.settings import Settings


async def upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    """An uploaded file's bytes, 1 MiB at a time."""
    while chunk := await upload.read(1024 * 1024):
        yield chunk


async def decode_upload(stream: AsyncIterator[bytes], settings: Settings) -> DecodedMedia:
    """Spool `stream` to a temporary file (413 past the limit), then decode it to 16 kHz mono Opus (caller deletes)."""
    source = await spool_to_file(stream, limit=settings.max_upload_bytes)
    try:
        return await asyncio.to_thread(
            decode_for_storage, source, max_seconds=settings.max_audio_seconds, bitrate=settings.media_bitrate
        )
    finally:
        source.unlink(missing_ok=True)
