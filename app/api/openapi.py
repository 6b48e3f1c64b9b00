"""OpenAPI documentation for the create-task route, whose body FastAPI cannot infer (three body kinds)."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from app.api.compat.evl.docs import ERROR_SCHEMA as EVL_ERROR_SCHEMA
from app.api.i18n import localized
from app.schemas.tasks import TaskCreate

_schema = TaskCreate.model_json_schema(ref_template="#/components/schemas/{model}")
EXTRA_COMPONENTS: dict[str, Any] = _schema.pop("$defs", {})
_form_schema = copy.deepcopy(_schema)
# Media is a `file` or a `file_url`: a form needs one of them, a JSON body the URL.
_form_schema["anyOf"] = [{"required": ["file"]}, {"required": ["file_url"]}]
_json_schema = {**_schema, "required": ["file_url"]}
_form_schema["properties"]["file"] = {
    "type": "string",
    "format": "binary",
    "description": "The audio or video file (mp3, wav, ogg/opus, flac, m4a/aac, mp4, webm, mkv, ...).",
}
_binary = {"schema": {"type": "string", "format": "binary"}}

CREATE_TASK_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": _form_schema},
            "application/json": {
                "schema": _json_schema,
                "example": {"file_url": "https://example.com/talk.mp3", "language": "en", "priority": "high"},
            },
            "audio/*": _binary,
            "video/*": _binary,
            "application/octet-stream": _binary,
        },
    }
}


def platform_openapi(platform: str) -> dict[str, Any]:
    """The body of a platform-link route: `url` or `text`, plus any task option but `file_url` and `platform`."""
    options = {k: v for k, v in _schema["properties"].items() if k not in ("file_url", "platform")}
    body = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "maxLength": 2048, "description": f"A {platform} share or short link."},
            "text": {"type": "string", "maxLength": 4096, "description": "Share text that contains such a link."},
            **options,
        },
        "anyOf": [{"required": ["url"]}, {"required": ["text"]}],
        "additionalProperties": False,
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": body}, "application/x-www-form-urlencoded": {"schema": body}},
        }
    }


def options_openapi(model: type[BaseModel], *, media_type: str, file: str | None = None) -> dict[str, Any]:
    """A route that reads `model`'s fields itself, from the body or the query string: both documented."""
    schema = model.model_json_schema()
    body = copy.deepcopy(schema)
    if file is not None:
        body["properties"] = {"file": {"type": "string", "format": "binary", "description": file}, **body["properties"]}
        body["required"] = ["file"]
    parameters = [
        {"name": name, "in": "query", "required": False, "schema": field, "description": field.get("description", "")}
        for name, field in schema["properties"].items()
    ]
    return {
        "parameters": parameters,
        "requestBody": {"required": file is not None, "content": {media_type: {"schema": body}}},
    }


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An error as application/problem+json (RFC 9457).",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "examples": ["urn:whisper-service:problem:TaskNotFound"]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What went wrong and what to do."},
        "errors": {
            "type": "array",
            "description": "Each invalid field (validation errors).",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
OPENAI_ERROR_SCHEMA: dict[str, Any] = {
    "title": "OpenAIError",
    "description": "An error in OpenAI's shape, so its SDKs raise the matching exception.",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "code": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
        }
    },
}
DISTRIBUTED_ERROR_SCHEMA: dict[str, Any] = {
    "title": "DistributedError",
    "description": "An error in the distributed Whisper service's shape.",
    "type": "object",
    "required": ["success", "error"],
    "properties": {
        "success": {"type": "boolean", "const": False},
        "error": {"type": "string", "description": "What went wrong and what to do."},
    },
}
DISTRIBUTED_PATHS = ("/transcribe/", "/models")
ERROR_DESCRIPTIONS = {
    202: "The task is still queued or being processed (the evl API answers this in its error shape).",
    400: "A body that cannot be parsed (too many form fields, an empty upload); on the OpenAI routes, any "
    "invalid value.",
    401: "Missing or invalid API key.",
    404: "No such task, summary or model (or not the caller's).",
    409: "The task is not in a state that allows this.",
    413: "The body is larger than the limit.",
    415: "The media or Content-Type is not accepted.",
    422: "Invalid input; the problem names the field.",
    429: "Rate limit, task limit or stream limit reached; see Retry-After.",
    500: "The task failed (evl API), or the server failed.",
    502: "The LLM failed.",
    503: "The database is briefly unavailable; retry shortly.",
    504: "The LLM did not answer in time.",
}
UNAUTHENTICATED = ("/health", "/ready", "/metrics", "/api/health/check")
OWN_ERRORS = "x-own-errors"
"""A route's `openapi_extra={OWN_ERRORS: True}` says it documents its error responses itself (another service's
error shape, app/api/compat/); the marker is removed from the published schema."""
EVL_PREFIX = "/api/"
EVL_BY_TASK = ("/api/whisper/tasks/result", "/api/whisper/tasks/delete", "/api/whisper/generate_subtitles")


def _evl_error_codes(path: str, method: str) -> set[int]:
    """The error statuses of an evl route."""
    if path == "/api/whisper/callback/test":
        return {400, 422}
    codes = {400, 401, 422, 429, 500, 503}
    if path in EVL_BY_TASK or path == "/api/chatgpt/summary":
        codes.add(404)
    if path in ("/api/whisper/tasks/result", "/api/chatgpt/summary"):
        codes.add(202)
    if path == "/api/chatgpt/summary":
        codes |= {502, 504}
    if method == "post":
        codes |= {413, 415}
    return codes


def _error_codes(path: str, method: str) -> set[int]:
    """The error statuses an operation can answer with."""
    if path in UNAUTHENTICATED:
        return set()
    if path.startswith(EVL_PREFIX):
        return _evl_error_codes(path, method)
    if path.startswith(DISTRIBUTED_PATHS):  # invalid values are 400 there
        return {400, 401, 413, 415, 429, 500, 503} if method == "post" else {401, 429, 503}
    codes = {401, 422, 429, 503}
    if "{" in path:
        codes.add(404)
    if method in ("post", "put", "patch"):
        codes |= {400, 413, 415}
    if path.startswith("/v1/tasks/{task_id}/"):
        codes.add(409)
    if path in ("/v1/tasks", "/v1/media/extract-audio") or path.startswith("/v1/audio/"):
        codes.add(400)
    if path.startswith(("/v1/audio/", "/v1/models")):
        codes |= {400, 404}
    return codes


def document_errors(schema: dict[str, Any]) -> None:
    """Give every operation the error responses it can send, with their real media type and body."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"], schemas["OpenAIError"] = PROBLEM_SCHEMA, OPENAI_ERROR_SCHEMA
    schemas["EvlError"] = EVL_ERROR_SCHEMA
    schemas["DistributedError"] = DISTRIBUTED_ERROR_SCHEMA
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path, operations in schema.get("paths", {}).items():
        media_type, ref = "application/problem+json", "Problem"
        if path.startswith(("/v1/audio/", "/v1/models")):
            media_type, ref = "application/json", "OpenAIError"
        elif path.startswith(EVL_PREFIX):
            media_type, ref = "application/json", "EvlError"
        elif path.startswith(DISTRIBUTED_PATHS):
            media_type, ref = "application/json", "DistributedError"
        for method, operation in operations.items():
            if operation.pop(OWN_ERRORS, False):
                continue
            responses = operation.setdefault("responses", {})
            codes = _error_codes(path, method)
            if codes and 422 not in codes:  # FastAPI's own 422 (HTTPValidationError, removed above) is never sent
                responses.pop("422", None)
            for code in sorted(codes):
                documented = responses.setdefault(str(code), {"description": ERROR_DESCRIPTIONS[code]})
                documented["content"] = {media_type: {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def english_schema(app: FastAPI) -> dict[str, Any]:
    """The schema as the code writes it (English), with the create-task body's component schemas included."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    schema.setdefault("components", {}).setdefault("schemas", {}).update(EXTRA_COMPONENTS)
    document_errors(schema)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Generate the schema once: English, each summary and description followed by its Chinese."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = localized(english_schema(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
