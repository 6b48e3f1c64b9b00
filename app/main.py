"""The FastAPI application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from app.api.deps import get_principal
from app.api.limits import BodySizeLimit
from app.api.openapi import install_openapi
from app.api.problems import install_problem_handlers
from app.api.routes import callbacks, events, health, media, openai, summaries, tasks, web, workers
from app.db.engine import create_engine, session_factory
from app.services.auth import KeyRing, RateLimiter
from app.services.metrics import HttpMetrics
from app.services.webhooks import WebhookDispatcher
from app.settings import Settings, get_settings

DESCRIPTION = """
Self-hosted speech-to-text. Submit audio or video to `/v1/tasks`; a worker transcribes it with faster-whisper;
poll the task, then fetch the transcript or subtitles. Errors are `application/problem+json`.
"""
# Room for multipart boundaries and form fields on top of the file itself.
MULTIPART_SLACK_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None, *, deliver_webhooks: bool = True) -> FastAPI:
    """Build the app; the database engine and a webhook dispatcher live for its lifespan."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.resolved_database_url)
        app.state.sessions = session_factory(engine)
        stop = asyncio.Event()
        dispatcher = (
            asyncio.create_task(WebhookDispatcher(sessions=app.state.sessions, settings=settings).run(stop))
            if deliver_webhooks
            else None
        )
        try:
            yield
        finally:
            stop.set()
            if dispatcher is not None:
                await dispatcher
            await engine.dispose()

    app = FastAPI(
        title="whisper-service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "tasks", "description": "Transcription tasks: create, follow, export."},
            {"name": "summaries", "description": "LLM summaries of transcripts."},
            {"name": "openai", "description": "OpenAI-compatible audio and model endpoints."},
            {"name": "workers", "description": "The worker fleet."},
            {"name": "media", "description": "Media utilities."},
            {"name": "health", "description": "Process health."},
        ],
    )
    app.state.settings = settings
    app.state.keyring = KeyRing.from_settings(settings)
    app.state.limiter = RateLimiter(settings.rate_limit_per_minute)
    authenticated = [Depends(get_principal)]
    app.include_router(events.router, dependencies=authenticated)  # before /v1/tasks/{task_id}
    app.include_router(tasks.router, dependencies=authenticated)
    app.include_router(callbacks.router, dependencies=authenticated)
    app.include_router(summaries.router, dependencies=authenticated)
    app.include_router(workers.router, dependencies=authenticated)
    app.include_router(media.router, dependencies=authenticated)
    app.include_router(openai.router)  # authenticates per route, so that errors keep OpenAI's shape
    app.include_router(health.router)
    app.include_router(web.router)
    app.mount("/web", StaticFiles(directory=web.WEB_DIR), name="web")
    install_problem_handlers(app)
    install_openapi(app)
    app.add_middleware(BodySizeLimit, limit=settings.max_upload_bytes + MULTIPART_SLACK_BYTES)
    app.add_middleware(HttpMetrics)
    return app
