"""WhisperX's errors: FastAPI's 422 `{"detail": [...]}` for a parameter or the file, `{"error": ...}` for the rest."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.api.limits import body_error
from app.api.shaped import shaped_route
from app.db.retry import is_transient
from app.errors import AppError, InvalidInput

log = logging.getLogger(__name__)


def whisperx_error(exc: Exception, request: Request, *, query: frozenset[str] = frozenset()) -> JSONResponse:
    """An invalid parameter or file as FastAPI's `{"detail": [...]}` (422); any other error as `{"error": message}`
    with this server's status (WhisperX says 500 for everything; ours tells a client's fault from the server's).
    `query` names the route's query parameters, for the `loc` of an invalid one."""
    exc = body_error(exc)
    if isinstance(exc, RequestValidationError):
        return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
    if isinstance(exc, AppError):
        if exc.status_code == 422:
            field = str(exc.extra.get("field", ""))
            place = "query" if field in query or field in request.query_params else "body"
            issue = {"type": "value_error", "loc": [place, field] if field else [place], "msg": exc.detail}
            return JSONResponse({"detail": [{**issue, "input": request.query_params.get(field)}]}, 422)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    if isinstance(exc, HTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)
    if is_transient(exc):
        body = {"error": "The database is briefly unavailable; retry shortly."}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "2"})
    log.error("unhandled error on a WhisperX route", exc_info=exc)
    return JSONResponse({"error": "The server failed to handle the request."}, status_code=500)


WhisperXRoute = shaped_route(
    lambda route, request, exc: whisperx_error(
        exc, request, query=frozenset(param.alias for param in route.dependant.query_params)
    )
)
"""Renders every error of its routes, dependencies and body parsing included, in WhisperX's shapes."""


@contextmanager
def blaming(field: str) -> Iterator[None]:
    """An invalid value raised inside without naming its field is about `field` (so that its 422 names it)."""
    try:
        yield
    except InvalidInput as exc:
        exc.extra.setdefault("field", field)
        raise
