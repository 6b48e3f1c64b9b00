"""POST /v1/media/extract-audio: the audio track of an upload, converted, as a streamed download."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.datastructures import UploadFile

from app.api.bodies import content_type_of, group, merge_query, validate
from app.api.deps import SettingsDep
from app.api.extract import TemporaryFileResponse, extract_upload
from app.api.limits import UPLOAD_ERRORS, read_form, takes_upload
from app.api.openapi import options_openapi
from app.errors import InvalidInput, UnsupportedMediaType
from app.schemas.extraction import ExtractOptions
from app.services.extraction import CODECS
from app.settings import Settings

router = APIRouter(prefix="/v1/media", tags=["media"])


@router.post(
    "/extract-audio",
    summary="Extract audio",
    description="Upload audio or video as a multipart `file`; get its first audio track back as wav, flac, mp3 or "
    "opus, streamed. Options are form fields or query parameters; an unknown one is refused (422). Audio longer than "
    "WHISPER_MAX_AUDIO_SECONDS, or a result larger than WHISPER_MAX_EXTRACT_BYTES, is refused (422).",
    response_class=FileResponse,
    responses={200: {"content": {codec.media_type: {} for codec in CODECS.values()}}, **UPLOAD_ERRORS},
    openapi_extra=options_openapi(ExtractOptions, media_type="multipart/form-data", file="The audio or video file."),
)
@takes_upload
async def extract(request: Request, settings: SettingsDep) -> FileResponse:
    """The converted audio as a download; the temporary files are removed once it is sent."""
    if content_type_of(request) != "multipart/form-data":
        raise UnsupportedMediaType("Send multipart/form-data with the media as a `file` field.")
    form = await read_form(request)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("Give the media as a `file` upload.", field="file")
        fields = group((k, v) for k, v in form.multi_items() if k != "file")
        query = group(request.query_params.multi_items())
        options: ExtractOptions = validate(ExtractOptions, merge_query(fields, query, ExtractOptions))
        return await _extract(upload, options, settings)
    finally:
        await form.close()


async def _extract(file: UploadFile, options: ExtractOptions, settings: Settings) -> FileResponse:
    output = await extract_upload(file, options, settings)
    stem = Path(file.filename or "audio").stem or "audio"
    return TemporaryFileResponse(
        output, media_type=CODECS[options.output_format].media_type, filename=f"{stem}.{options.output_format.value}"
    )
