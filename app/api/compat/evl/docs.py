"""OpenAPI documentation of the evl routes whose parameters are read by hand (empty values mean the default)."""

from __future__ import annotations

from typing import Any

from app.api.compat.evl.models import CreateOptions, TaskOptions

TAG = "Fast-Powerful-Whisper-AI-Services-API"
TAG_DESCRIPTION = (
    'Drop-in API of Evil0ctal\'s "Whisper Service" (Fast-Powerful-Whisper-AI-Services-API): the same routes under '
    "`/api`, parameters, `{code, router, params, data}` envelope, error shapes and task object, on this service's "
    "queue. Task ids are the tasks' cluster-wide numbers. Send an API key where the server has keys."
)

ERROR_SCHEMA: dict[str, Any] = {
    "title": "EvlError",
    "description": "An error as the evl API gives it: `detail` is {code, message, time, router, params}, FastAPI's "
    "list of invalid fields (422), or a plain message (400 of the TikTok and Douyin routes).",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "anyOf": [
                {
                    "type": "object",
                    "required": ["code", "message", "time", "router", "params"],
                    "properties": {
                        "code": {"type": "integer", "description": "The HTTP status."},
                        "message": {"type": "string", "description": "What went wrong."},
                        "time": {"type": "string", "description": "Server local time, YYYY-MM-DD HH:MM:SS."},
                        "router": {"type": "string", "description": "The request URL."},
                        "params": {"type": "object", "description": "The query parameters (or the body)."},
                    },
                },
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["type", "loc", "msg"],
                        "properties": {
                            "type": {"type": "string"},
                            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                            "msg": {"type": "string"},
                            "input": {},
                        },
                    },
                },
                {"type": "string"},
            ]
        }
    },
}


def _parameters(model: type[CreateOptions]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": field,
            "description": field.get("description", ""),
            "examples": {"example": {"value": field["examples"][0]}},
        }
        for name, field in schema["properties"].items()
    ]


CREATE_OPENAPI: dict[str, Any] = {
    "parameters": _parameters(CreateOptions),
    "requestBody": {
        "required": False,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file_upload": {
                            "type": "string",
                            "format": "binary",
                            "description": "The audio or video file (or give `file_url` and no body).",
                        }
                    },
                }
            }
        },
    },
}


def _form_schema(platform: str) -> dict[str, Any]:
    schema = TaskOptions.model_json_schema()
    properties = {
        "url": {
            "type": "string",
            "format": "uri",
            "maxLength": 2048,
            "description": f"The {platform} video link.",
            "examples": ["https://www.tiktok.com/@user/video/7359655005701311786"],
        },
        **schema["properties"],
        "platform": {**schema["properties"]["platform"], "examples": [platform.lower()]},
        "save_data_in_db": {
            "type": "boolean",
            "description": "Accepted for compatibility; the page's details are kept with the task.",
            "examples": [True],
        },
    }
    return {"type": "object", "required": ["url"], "properties": properties}


def crawler_openapi(platform: str) -> dict[str, Any]:
    """The form body of /api/tiktok/video_task and /api/douyin/video_task."""
    schema = _form_schema(platform)
    forms = ("application/x-www-form-urlencoded", "multipart/form-data")
    content = {media_type: {"schema": schema} for media_type in forms}
    return {"requestBody": {"required": True, "content": content}}
