"""Request body limits: an ASGI middleware that refuses bodies past their limit while they stream in, the routes
that may take an upload, and the bounds on multipart forms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import AppError, BodyTooLarge, UploadTooLarge

# A multipart form holds one file and a few small fields: bounding them keeps a form's memory to a few MB (each
# field is held in memory; the file is spooled to disk).
MAX_FORM_FILES = 1
MAX_FORM_FIELDS = 64
MAX_FIELD_BYTES = 64 * 1024
# Room in an upload's body for the form fields, part headers and boundaries beside the file itself.
FORM_OVERHEAD_BYTES = MAX_FORM_FIELDS * MAX_FIELD_BYTES + 64 * 1024
# Content types that carry an upload; any other body (JSON, url-encoded forms) gets the small limit.
UPLOAD_TYPES = ("multipart/form-data", "audio/", "video/", "application/octet-stream")

# How the upload routes document the refusals of this module and of media sniffing.
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "A multipart form past its bounds (one file, 64 fields, 64 KiB per field), or an empty file"},
    413: {"description": "The upload is larger than WHISPER_MAX_UPLOAD_BYTES"},
    415: {"description": "The file is not audio or video (an image, a document, an archive...)"},
}

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
# The middleware sees which endpoint a request was routed to (scope["endpoint"]) by its first read of the body; FastAPI
# reads a form before any dependency of the route runs, so the mark must be on the endpoint itself.
_upload_endpoints: set[Callable[..., Any]] = set()


def takes_upload(endpoint: Endpoint) -> Endpoint:
    """Mark a route's endpoint as one whose body may be an upload, up to WHISPER_MAX_UPLOAD_BYTES."""
    _upload_endpoints.add(endpoint)
    return endpoint


async def read_form(request: Request, *, max_files: int = MAX_FORM_FILES) -> FormData:
    """The request's form, parsed within the form bounds (400 naming the bound once a part passes it)."""
    return await request.form(max_files=max_files, max_fields=MAX_FORM_FIELDS, max_part_size=MAX_FIELD_BYTES)


def body_error(exc: Exception) -> Exception:
    """FastAPI answers any error raised while it reads a body with 400 "There was an error parsing the body"; a
    limit of ours raised there is taken back out, so that it keeps its own status and message."""
    if isinstance(exc, HTTPException) and isinstance(exc.__cause__, AppError):
        return exc.__cause__
    return exc


class BodySizeLimit:
    """Stops reading a request body once it passes its limit: 413 before the app sees it all.

    Upload routes (see `takes_upload`) take a raw media body of up to `max_upload` bytes, or a multipart one with
    room for its fields on top; every other body stops at `max_body` bytes."""

    def __init__(self, app: ASGIApp, *, max_upload: int, max_body: int) -> None:
        self.app = app
        self.max_upload = max_upload
        self.max_body = max_body

    def _refusal(self, scope: Scope) -> tuple[int, Callable[[], AppError]]:
        """This request's limit and the error past it (called at the first read, once the route is known)."""
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").decode("latin-1").strip().lower()
        if scope.get("endpoint") in _upload_endpoints and content_type.startswith(UPLOAD_TYPES):
            room = FORM_OVERHEAD_BYTES if content_type.startswith("multipart/") else 0
            message = f"The upload is larger than the limit of {self.max_upload} bytes."
            return self.max_upload + room, lambda: UploadTooLarge(message)
        message = f"The request body is larger than the limit of {self.max_body} bytes for bodies that are not uploads."
        return self.max_body, lambda: BodyTooLarge(message)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"")
        received = int(declared) if declared.isdigit() else 0  # a declared length past the limit fails at once
        refusal: tuple[int, Callable[[], AppError]] | None = None

        async def limited_receive() -> Message:
            nonlocal received, refusal
            if refusal is None:
                refusal = self._refusal(scope)
                if received <= refusal[0]:
                    received = 0  # the declared length fits: count what actually arrives
            limit, error = refusal
            if received > limit:
                raise error()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise error()
            return message

        await self.app(scope, limited_receive, send)
