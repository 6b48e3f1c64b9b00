"""The FastAPI application."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from app.api.compat import distributed, evl, whisperx
from app.api.deps import get_principal, reject_unknown_query
from app.api.docs import inline_script_hashes, install_docs
from app.api.limits import MAX_FIELD_BYTES, MAX_FORM_FIELDS, MAX_FORM_FILES, BodySizeLimit
from app.api.openapi import install_openapi
from app.api.problems import install_problem_handlers
from app.api.routes import callbacks, events, health, media, openai, summaries, tasks, web, workers
from app.api.security import SecurityHeaders, content_security_policy
from app.db.engine import create_engine, session_factory
from app.services.api_keys import KeyCache
from app.services.auth import Authenticator, KeyRing, RateLimiter
from app.services.events import StreamSlots
from app.services.metrics import HttpMetrics
from app.services.webhooks import WebhookDispatcher
from app.settings import Settings, get_settings

DESCRIPTION = """
Self-hosted speech-to-text. Submit audio or video to `/v1/tasks`; a worker transcribes it with faster-whisper;
poll the task, then fetch the transcript or subtitles. Errors are `application/problem+json`.
"""


def create_app(settings: Settings | None = None, *, deliver_webhooks: bool = True) -> FastAPI:
    """Build the app; the database engine and a webhook dispatcher live for its lifespan."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.resolved_database_url)
        app.state.sessions = session_factory(engine)
        app.state.authenticator = Authenticator(
            KeyRing.from_settings(settings),
            KeyCache(app.state.sessions, ttl=settings.key_cache_seconds),
            require_key=settings.listens_beyond_loopback,
        )
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
        form_limits={"max_files": MAX_FORM_FILES, "max_fields": MAX_FORM_FIELDS, "max_part_size": MAX_FIELD_BYTES},
        docs_url=None,  # served by install_docs from local assets
        redoc_url=None,
        dependencies=[Depends(reject_unknown_query)],
        openapi_tags=[
            {"name": "tasks", "description": "Transcription tasks: create, follow, export."},
            {"name": "summaries", "description": "LLM summaries of transcripts."},
            {"name": "openai", "description": "OpenAI-compatible audio and model endpoints."},
            {"name": "workers", "description": "The worker fleet."},
            {"name": "media", "description": "Media utilities."},
            {"name": "health", "description": "Process health."},
            {
                "name": "whisperx",
                "description": "Drop-in for the WhisperX offline API (`POST /transcribe`): words and speakers, "
                "answered when done.",
            },
            {"name": evl.TAG, "description": evl.TAG_DESCRIPTION},
            {
                "name": "distributed",
                "description": "The distributed Whisper service (Whisper 分散式語音轉文字系統): its clients work "
                "unchanged. Synchronous transcription with Traditional Chinese output; `/health` is the one above.",
            },
        ],
    )
    app.state.settings = settings
    app.state.limiter = RateLimiter(settings.rate_limit_per_minute)
    app.state.auth_failures = RateLimiter(
        settings.auth_failures_per_minute, what="failed authentications per minute from this address"
    )
    app.state.stream_slots = StreamSlots(settings.max_event_streams)
    authenticated = [Depends(get_principal)]
    app.include_router(events.router, dependencies=authenticated)  # before /v1/tasks/{task_id}
    app.include_router(tasks.router, dependencies=authenticated)
    app.include_router(callbacks.router, dependencies=authenticated)
    app.include_router(summaries.router, dependencies=authenticated)
    app.include_router(workers.router, dependencies=authenticated)
    app.include_router(media.router, dependencies=authenticated)
    app.include_router(openai.router)  # authenticates per route, so that errors keep OpenAI's shape
    app.include_router(whisperx.router)  # likewise, WhisperX's shapes
    app.include_router(distributed.router)  # likewise, in that service's error shape
    app.include_router(health.router)
    app.include_router(evl.router)  # authenticates per route, so that errors keep that API's shapes
    app.include_router(web.router)
    app.mount("/web", StaticFiles(directory=web.WEB_DIR), name="web")
    install_docs(app)
    install_problem_handlers(app)
    install_openapi(app)
    app.add_middleware(BodySizeLimit, max_upload=settings.max_upload_bytes, max_body=settings.max_body_bytes)
    app.add_middleware(HttpMetrics)
    app.add_middleware(SecurityHeaders, csp=content_security_policy(inline_script_hashes(app)))  # outermost
    return app
