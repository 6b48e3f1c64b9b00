"""Errors rendered as application/problem+json (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from app.api.limits import body_error
from app.db.retry import is_transient
from app.errors import AppError, InvalidInput

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
PROBED_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def problem(status: int, title: str, detail: str, type_name: str, **extra: Any) -> JSONResponse:
    """A problem+json response."""
    body = {"type": f"urn:whisper-service:problem:{type_name}", "title": title, "status": status, "detail": detail}
    return JSONResponse({**body, **extra}, status_code=status, media_type=PROBLEM_JSON)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    extra = dict(exc.extra)
    if (field := extra.pop("field", None)) is not None:
        # One shape for every invalid field, ours and the request parser's: `errors`, as the README documents.
        extra["errors"] = [{"field": str(field), "message": exc.detail}]
    response = problem(exc.status_code, exc.title, exc.detail, exc.type_name, **extra)
    response.headers.update(exc.headers)
    return response


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"field": _field(e["loc"]), "message": e["msg"]} for e in exc.errors()]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(422, "Invalid input", detail, "InvalidInput", errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if isinstance(cause := body_error(exc), AppError):
        return await _app_error(request, cause)
    response = problem(exc.status_code, str(exc.detail), str(exc.detail), f"HTTP{exc.status_code}")
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:
        response.headers["Allow"] = _allowed_methods(request)
    return response


def _allowed_methods(request: Request) -> str:
    """Every method the app routes on this path: each is tried against the app's own routes, so this holds however
    the framework stores included routers (FastAPI 0.165 wraps them; their routes are not in `router.routes`). A
    literal path such as /v1/tasks/events is not also counted as an id of /v1/tasks/{task_id}."""
    path = request.scope["path"]
    routes = request.app.router.routes
    literal = {
        method
        for context in iter_route_contexts(routes)
        if getattr(context, "path", None) == path
        for method in getattr(context, "methods", None) or ()
    }
    probed = {
        method
        for method in PROBED_METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    }
    return ", ".join(sorted(literal or probed))


NUL_STATES = frozenset({"22021", "22P05"})
"""PostgreSQL refusing text it cannot store (a NUL character): the request's fault, not the server's."""


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if getattr(getattr(exc, "orig", None), "sqlstate", None) in NUL_STATES:
        detail = "The request contains a NUL character (\\u0000, %00), which no field may hold; remove it."
        return await _app_error(request, InvalidInput(detail))
    if is_transient(exc):
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        response = problem(
            503, "Service unavailable", "The database is briefly unavailable; retry shortly.", "DatabaseUnavailable"
        )
        response.headers["Retry-After"] = "2"
        return response
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(500, "Internal error", "The server failed to handle the request.", "InternalError")


def install_problem_handlers(app: FastAPI) -> None:
    """Register the one renderer for every error."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
