"""Checks a node makes before it starts, for what settings alone cannot tell: models, GPUs, the database.

Each failure is one line naming the variable to change (the CLI prints it and exits with code 2), instead of a node
that starts and then fails every request or task.
"""

from __future__ import annotations

import asyncio

import ctranslate2

from app.db.engine import create_engine
from app.db.migrate import is_at_head, schema_head
from app.errors import StartupCheckFailed
from app.services.catalog import offered_models
from app.settings import Settings

DATABASE_TIMEOUT_SECONDS = 10


def check_models(settings: Settings) -> None:
    """The default model and every preloaded one must be models this server offers."""
    offered = offered_models(settings)
    for variable, names in (
        ("WHISPER_DEFAULT_MODEL", [settings.default_model]),
        ("WHISPER_PRELOAD_MODELS", settings.preload_models),
    ):
        for name in names:
            if name not in offered:
                raise StartupCheckFailed(
                    f"{variable}: unknown model {name!r}; use one of {', '.join(offered)} "
                    "(a local model directory must also be listed in WHISPER_EXTRA_MODELS; hub names need "
                    "WHISPER_ALLOW_MODEL_DOWNLOADS=true or a preloaded model)"
                )


def cuda_device_count() -> int:
    """GPUs CTranslate2 can use."""
    count: int = ctranslate2.get_cuda_device_count()
    return count


def check_device(settings: Settings) -> None:
    """WHISPER_DEVICE=cuda needs a GPU CTranslate2 sees, and WHISPER_DEVICE_INDEX must name existing ones."""
    if settings.device != "cuda":
        return
    count = cuda_device_count()
    if count == 0:
        raise StartupCheckFailed("WHISPER_DEVICE: cuda, but CTranslate2 sees no CUDA GPU here; use cpu or auto")
    missing = [i for i in settings.device_index if i >= count]
    if missing:
        raise StartupCheckFailed(
            f"WHISPER_DEVICE_INDEX: no GPU {missing[0]} here (this machine has {count}; the index in "
            "WHISPER_DEVICE=cuda:N counts too)"
        )


async def check_database(settings: Settings, *, at_head: bool) -> None:
    """The database answers (and, for a worker, its schema is at the newest revision)."""
    engine = create_engine(settings.resolved_database_url)
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS):
            current = await is_at_head(engine)
    except Exception as exc:
        # The driver's own message (not SQLAlchemy's, which may quote the statement); never the URL.
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StartupCheckFailed(f"WHISPER_DATABASE_URL: the database is unreachable: {reason}") from exc
    finally:
        await engine.dispose()
    if at_head and not current:
        raise StartupCheckFailed(
            f"WHISPER_DATABASE_URL: the database schema is not at {schema_head()}: run `whisper-service migrate` "
            "(or start `whisper-service serve`, which migrates) before starting workers"
        )
