"""OpenAPI documentation for the create-task route, whose body FastAPI cannot infer (three body kinds)."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.schemas.tasks import TaskCreate

_schema = TaskCreate.model_json_schema(ref_template="#/components/schemas/{model}")
EXTRA_COMPONENTS: dict[str, Any] = _schema.pop("$defs", {})
_form_schema = copy.deepcopy(_schema)
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
                "schema": _schema,
                "example": {"file_url": "https://example.com/talk.mp3", "language": "en", "priority": "high"},
            },
            "audio/*": _binary,
            "video/*": _binary,
            "application/octet-stream": _binary,
        },
    }
}


def install_openapi(app: FastAPI) -> None:
    """Generate the schema once, with the create-task body's component schemas included."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(EXTRA_COMPONENTS)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
