"""Chinese beside the English of the OpenAPI schema: each summary and description, from a catalogue keyed by English.

The schema is written in English in the code (route decorators, `Field(description=...)`, docstrings); once it is
built, `localized` appends the Simplified Chinese of each text from `zh.ZH`: a description becomes
"English\\n\\n中文" (two Markdown paragraphs in Swagger UI and ReDoc), a summary "English · 中文" (a one-line title).
Keys are the English with its whitespace collapsed, so rewrapping a docstring keeps its translation; changing the
English drops it, and tests/api/test_openapi_chinese.py then names the text to translate.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from app.api.i18n.zh import ZH

TEXT_KEYS = ("summary", "description")
# Values that are data, not documentation: an example or default may hold a "description" of its own.
DATA_KEYS = frozenset({"example", "examples", "default", "enum", "const"})
# Mappings whose keys are names (of fields, paths, media types, status codes), never keywords.
NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "schemas", "paths", "responses", "content"})
SUMMARY_SEPARATOR = " · "


def catalogue_key(text: str) -> str:
    """The catalogue's key for an English text: its words, single-spaced."""
    return " ".join(text.split())


def texts(node: Any, where: str = "", names: bool = False) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(where, owner, key) of every summary and description; `where` reads `paths › /v1/tasks › get › summary`."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from texts(item, f"{where} › {index}")
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        here = f"{where} › {key}" if where else str(key)
        if not names and key in TEXT_KEYS and isinstance(value, str):
            yield here, node, key
        elif names or key not in DATA_KEYS:
            yield from texts(value, here, names=not names and key in NAME_MAPS)


def bilingual(key: str, english: str, chinese: str) -> str:
    """One text in both languages: a summary on one line, a description as two paragraphs."""
    english = english.strip()
    return f"{english}{SUMMARY_SEPARATOR}{chinese}" if key == "summary" else f"{english}\n\n{chinese}"


def localized(schema: dict[str, Any], catalogue: dict[str, str] = ZH) -> dict[str, Any]:
    """A copy of the schema whose texts carry their Chinese (a text without a translation stays English only).

    A copy, as the schema shares dicts with module constants (component schemas, route extras) that other apps reuse.
    """
    schema = copy.deepcopy(schema)
    for _, owner, key in list(texts(schema)):
        chinese = catalogue.get(catalogue_key(owner[key]))
        if chinese:
            owner[key] = bilingual(key, owner[key], chinese)
    return schema


def untranslated(schema: dict[str, Any], catalogue: dict[str, str] = ZH) -> dict[str, str]:
    """English texts of an (English) schema without a translation, each with where it is first used."""
    missing: dict[str, str] = {}
    for where, owner, key in texts(schema):
        english = catalogue_key(owner[key])
        if english and not catalogue.get(english):
            missing.setdefault(english, where)
    return missing
