"""Reading task options from a request: JSON objects, forms and the query string, merged, none ignored."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from app.errors import InvalidInput

MAX_FILENAME = 255  # the column's size


def content_type_of(request: Request) -> str:
    """The media type of the body, lower case, without parameters."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; 422 for anything else (invalid, nested past Python's limits, not an object)."""
    raw = await request.body()
    try:
        body = json.loads(raw)
    except RecursionError as exc:
        raise InvalidInput("The JSON body is nested too deeply.") from exc
    except ValueError as exc:  # also UnicodeDecodeError
        raise InvalidInput(f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidInput("The JSON body must be an object with task fields.")
    return body


def explicit_filename(value: Any) -> str | None:
    """The `filename` option of an upload: one name of at most 255 characters without control characters (422)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("Give filename once.", field="filename")
    if len(value) > MAX_FILENAME:
        raise InvalidInput(f"filename may have at most {MAX_FILENAME} characters.", field="filename")
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise InvalidInput("filename must not contain control characters.", field="filename")
    return value or None


def group(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Form or query pairs to a dict; a repeated key becomes a list (e.g. several temperatures)."""
    grouped: dict[str, Any] = {}
    for key, value in items:
        if key in grouped:
            previous = grouped[key]
            grouped[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            grouped[key] = value
    return grouped


def merge_query(body: Mapping[str, Any], query: Mapping[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """Body fields plus query parameters; a field given in both must mean the same value (422 naming it)."""
    merged = dict(body)
    for name, value in query.items():
        if name in merged and not _same(model, name, merged[name], value):
            raise InvalidInput(
                f"{name} is given in the query string and in the body with different values; give it once.",
                field=name,
            )
        merged.setdefault(name, value)
    return merged


def _same(model: type[BaseModel], name: str, first: Any, second: Any) -> bool:
    if first == second:
        return True
    try:  # "3" in a query and 3 in JSON are the same value
        return bool(model.model_validate({name: first}) == model.model_validate({name: second}))
    except ValidationError:
        return False


def validate(model: type[BaseModel], data: Mapping[str, Any]) -> Any:
    """Validate request fields; errors name the field, as FastAPI's own validation does."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from exc
    except RecursionError as exc:
        raise InvalidInput("A field is nested too deeply.") from exc
