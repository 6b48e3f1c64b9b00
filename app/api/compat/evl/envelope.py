"""The evl API's answers: the `{code, router, params, data}` envelope, and every error in its shapes.

Errors a handler raises are `{"detail": {code, message, time, router, params}}` with the HTTP status in `code`;
invalid fields are FastAPI's `422 {"detail": [{type, loc, msg, input}]}`, as the evl service (a FastAPI app) gives.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse as StarletteJSON
from starlette.exceptions import HTTPException

from app.api.limits import body_error
from app.api.shaped import shaped_route
from app.db.retry import is_transient
from app.errors import AppError, TaskNotFound


def _finite(value: Any) -> Any:
    """`value` with NaN and infinities as their names: JSON has no such numbers, and a request may send them (an
    echoed input or body must not turn a 422 into a 500)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


class JSONResponse(StarletteJSON):
    """JSON that renders whatever a request echoed, non-finite numbers included."""

    def render(self, content: Any) -> bytes:
        return super().render(_finite(content))


log = logging.getLogger(__name__)

NOT_FOUND = "Task not found or has been deleted or invalid task ID"
QUEUED = "Task is queued and not started yet"
PROCESSING = "Task is currently being processed"
FAILED = "Task failed during processing"
UNAVAILABLE = "Database error occurred. Please try again later."
# What each route was doing, for the message of an unexpected error (as the evl service words them).
DOING = {
    "/api/whisper/tasks/create": "creating the transcription task",
    "/api/whisper/tasks/query": "creating the transcription task",
    "/api/whisper/tasks/delete": "deleting the task",
    "/api/whisper/tasks/result": "retrieving the task result",
    "/api/whisper/callback/test": "testing the callback interface",
    "/api/whisper/extract_audio": "extracting audio from the video file",
    "/api/whisper/generate_subtitles": "generating subtitles",
    "/api/tiktok/video_task": "creating the transcription task",
    "/api/douyin/video_task": "creating the transcription task",
    "/api/chatgpt/summary": "retrieving the task result",
}


def envelope(request: Request, data: Any, params: Any = None) -> JSONResponse:
    """A success: `{code: 200, router: <the request URL>, params, data}`."""
    body = {"code": 200, "router": str(request.url), "params": {} if params is None else params, "data": data}
    return JSONResponse(jsonable_encoder(body))


def error_response(
    request: Request,
    status: int,
    message: str,
    *,
    params: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """`{"detail": {code, message, time, router, params}}`; `params` defaults to the query parameters."""
    detail = {
        "code": status,
        "message": message,
        "time": datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "router": str(request.url),
        "params": dict(request.query_params) if params is None else params,
    }
    return JSONResponse({"detail": jsonable_encoder(detail)}, status_code=status, headers=headers)


def invalid_fields(request: Request, errors: list[dict[str, Any]]) -> JSONResponse:
    """FastAPI's 422 list; a location without its part names `query` when the query string holds the field."""
    shown = []
    for error in errors:
        loc = list(error.get("loc", ()))
        if not loc or loc[0] not in ("query", "body", "path", "header"):
            loc = ["query" if loc and str(loc[0]) in request.query_params else "body", *loc]
        shown.append({**error, "loc": loc})
    return JSONResponse({"detail": jsonable_encoder(shown)}, status_code=422)


def evl_error(request: Request, exc: Exception) -> JSONResponse:
    """Any error of an evl route in that API's shapes."""
    exc = body_error(exc)
    if isinstance(exc, RequestValidationError):
        return invalid_fields(request, list(exc.errors()))
    if isinstance(exc, TaskNotFound):
        return error_response(request, 404, NOT_FOUND)
    if isinstance(exc, AppError):
        field = exc.extra.get("field")
        if exc.status_code == 422 and field is not None:
            error = {"type": "value_error", "loc": [str(field)], "msg": exc.detail, "input": None}
            return invalid_fields(request, [error])
        return error_response(request, exc.status_code, exc.detail, headers=exc.headers)
    if isinstance(exc, HTTPException):
        return error_response(request, exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))
    if is_transient(exc):
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return error_response(request, 503, UNAVAILABLE, headers={"Retry-After": "2"})
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    doing = DOING.get(request.url.path, "handling the request")
    message = f"An unexpected error occurred while {doing}: the server failed; see its log."
    return error_response(request, 500, message)


EvlRoute = shaped_route(lambda _route, request, exc: evl_error(request, exc))
"""Renders every error of its routes (dependencies, parameters and body parsing included) in the evl shapes."""
