"""Entry point of a worker process: `whisper-service worker` or `python -m workers`."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import sys

from app import logs
from app.db.engine import create_engine, session_factory
from app.settings import Settings, get_settings
from app.supervisor import SUPERVISOR_VARIABLE
from workers.engine import FasterWhisperEngine
from workers.models import ModelPool, PoolConfig, default_batch_size, resolve_device
from workers.worker import Worker

log = logging.getLogger(__name__)


def build_engine(settings: Settings) -> FasterWhisperEngine:
    """The faster-whisper engine over a model pool configured from settings.

    With batching, each device holds one model replica and one decode thread feeds it batches; without, each
    device holds as many replicas as tasks run on it at once.
    """
    device = resolve_device(settings.device)
    batch_size = settings.batch_size or default_batch_size(device)
    concurrency = settings.worker_concurrency or 1
    pool = ModelPool(
        PoolConfig(
            cache_dir=settings.model_dir,
            device=settings.device,
            device_index=tuple(settings.device_index),
            compute_type=settings.compute_type,
            cpu_threads=settings.cpu_threads,
            num_workers=1 if settings.batching else max(1, math.ceil(concurrency / len(settings.device_index))),
            idle_seconds=settings.model_idle_seconds,
            allow_downloads=settings.allow_model_downloads,
        )
    )
    for name in settings.preload_models:
        pool.get(name)
    return FasterWhisperEngine(
        pool, batch_size=batch_size, batching=settings.batching, decoders=len(settings.device_index)
    )


async def run_worker(settings: Settings) -> None:
    """Run one worker until SIGTERM or SIGINT."""
    engine = create_engine(settings.resolved_database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    orphaned = asyncio.create_task(_stop_when_orphaned(stop))
    try:
        worker = Worker(sessions=session_factory(engine), engine=build_engine(settings), settings=settings)
        await worker.run(stop)
    finally:
        orphaned.cancel()
        await engine.dispose()
    if worker.abandoned_work:
        _exit_leaving_threads_behind()


async def _stop_when_orphaned(stop: asyncio.Event) -> None:
    """An embedded worker whose `serve` died (SIGKILL, OOM) stops as on SIGTERM, giving its tasks back, instead of
    running on with no API server and no one to stop it."""
    supervisor = os.environ.get(SUPERVISOR_VARIABLE)
    if not supervisor:
        return
    while not stop.is_set():
        if os.getppid() != int(supervisor):
            log.warning("the serve process %s is gone; stopping", supervisor)
            stop.set()
            return
        await asyncio.sleep(1.0)


def _exit_leaving_threads_behind() -> None:
    """End the process now: the tasks of busy threads (a decode inside a C call) were given back to the queue, and
    an ordinary exit would wait for those threads to finish."""
    log.info("exiting without waiting for the work that was given back")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main() -> None:
    """Run a worker with settings from the environment."""
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
