"""POST /v1/media/extract-audio: the audio track of an upload, converted, as a streamed download."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, UploadFile
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from app.api.deps import SettingsDep
from app.api.intake import upload_chunks
from app.services.extraction import CODECS, AudioFormat, check_request, extract_audio
from app.services.media import spool_to_file

router = APIRouter(prefix="/v1/media", tags=["media"])


@router.post(
    "/extract-audio",
    summary="Extract audio",
    description="Upload audio or video; get its first audio track back as wav, flac, mp3 or opus, streamed.",
    response_class=FileResponse,
    responses={200: {"content": {codec.media_type: {} for codec in CODECS.values()}}},
)
async def extract(
    settings: SettingsDep,
    file: Annotated[UploadFile, Form(description="The audio or video file.")],
    output_format: Annotated[
        AudioFormat, Form(description="wav, flac, mp3 or opus.", examples=["wav"])
    ] = AudioFormat.wav,
    sample_rate: Annotated[int, Form(ge=8000, le=48000, description="Samples per second.", examples=[16000])] = 16000,
    channels: Annotated[int, Form(ge=1, le=2, description="1 (mono) or 2 (stereo).", examples=[1])] = 1,
    bit_depth: Annotated[
        int, Form(description="Bits per sample: 16, 24 or 32 (wav); 16 or 24 (flac).", examples=[16])
    ] = 16,
) -> FileResponse:
    """The converted audio as a download; the temporary files are removed once it is sent."""
    check_request(output_format, sample_rate=sample_rate, bit_depth=bit_depth)
    source = await spool_to_file(upload_chunks(file), limit=settings.max_upload_bytes)
    try:
        output = await asyncio.to_thread(
            extract_audio, source, output_format, sample_rate=sample_rate, channels=channels, bit_depth=bit_depth
        )
    finally:
        source.unlink(missing_ok=True)
    stem = Path(file.filename or "audio").stem or "audio"
    return FileResponse(
        output,
        media_type=CODECS[output_format].media_type,
        filename=f"{stem}.{output_format.value}",
        background=BackgroundTask(output.unlink, missing_ok=True),
    )
