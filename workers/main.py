"""Entry point of a worker process: `whisper-service worker` or `python -m workers`."""

from __future__ import annotations

import asyncio
import math
import signal

from app import logs
from app.db.engine import create_engine, session_factory
from app.settings import Settings, get_settings
from workers.engine import FasterWhisperEngine
from workers.models import ModelPool, PoolConfig
from workers.worker import Worker


def build_engine(settings: Settings) -> FasterWhisperEngine:
    """The faster-whisper engine over a model pool configured from settings."""
    pool = ModelPool(
        PoolConfig(
            cache_dir=settings.model_dir,
            device=settings.device,
            device_index=tuple(settings.device_index),
            compute_type=settings.compute_type,
            cpu_threads=settings.cpu_threads,
            # CTranslate2 runs this many transcriptions at once on each device; the worker's concurrency is spread
            # over the devices.
            num_workers=max(1, math.ceil(settings.worker_concurrency / len(settings.device_index))),
            idle_seconds=settings.model_idle_seconds,
        )
    )
    for name in settings.preload_models:
        pool.get(name)
    return FasterWhisperEngine(pool, batch_size=settings.batch_size)


async def run_worker(settings: Settings) -> None:
    """Run one worker until SIGTERM or SIGINT."""
    engine = create_engine(settings.resolved_database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        worker = Worker(sessions=session_factory(engine), engine=build_engine(settings), settings=settings)
        await worker.run(stop)
    finally:
        await engine.dispose()


def main() -> None:
    """Run a worker with settings from the environment."""
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
