"""Audio extraction for the routes that offer it: the upload spooled, converted in a thread, sent and deleted."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import FileResponse
from starlette.datastructures import UploadFile
from starlette.types import Receive, Scope, Send

from app.api.intake import in_thread, upload_chunks
from app.schemas.extraction import ExtractOptions
from app.services.extraction import ExtractLimits, check_request, extract_audio
from app.services.media import spool_to_file
from app.settings import Settings


class TemporaryFileResponse(FileResponse):
    """A file download that deletes the file once sent, also when the client goes away mid-way."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            Path(self.path).unlink(missing_ok=True)


async def extract_upload(file: UploadFile, options: ExtractOptions, settings: Settings) -> Path:
    """The upload's audio converted as `options` say, in a temporary file the caller sends (and so deletes)."""
    check_request(options.output_format, sample_rate=options.sample_rate, bit_depth=options.bit_depth)
    limits = ExtractLimits(max_seconds=settings.max_audio_seconds, max_bytes=settings.max_extract_bytes)
    source = await spool_to_file(upload_chunks(file), limit=settings.max_upload_bytes)
    try:
        return await in_thread(
            lambda: extract_audio(
                source,
                options.output_format,
                sample_rate=options.sample_rate,
                channels=options.channels,
                bit_depth=options.bit_depth,
                limits=limits,
            ),
            discard=lambda path: path.unlink(missing_ok=True),
        )
    finally:
        source.unlink(missing_ok=True)
