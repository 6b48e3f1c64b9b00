"""The model pool under a slow load: other models, the pool's own queries and the worker's heartbeats go on."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from faster_whisper import WhisperModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Task, WorkerRecord
from tests.api.test_task_lifecycle import upload
from tests.conftest import wait_for
from workers.engine import FasterWhisperEngine
from workers.models import ModelKey, ModelPool, PoolConfig

WATCHDOG_SECONDS = 45.0
"""Ends a blocked load if the test itself is frozen by it (as the old pool did), so the test fails, not hangs."""


class SlowLoads:
    """A loader: the model named `slow` blocks until released (or the watchdog fires), others load at once."""

    def __init__(self, slow: str) -> None:
        self.slow = slow
        self.entered = threading.Event()
        self.released = threading.Event()
        self.calls: list[str] = []
        self.models: dict[str, WhisperModel] = {}
        self._watchdog = threading.Timer(WATCHDOG_SECONDS, self.released.set)
        self._watchdog.daemon = True
        self._watchdog.start()

    def __call__(self, key: ModelKey) -> WhisperModel:
        self.calls.append(key.name)
        if key.name == self.slow:
            self.entered.set()
            self.released.wait()
            raise RuntimeError(f"model {key.name} could not be loaded")
        return self.models.setdefault(key.name, cast(WhisperModel, object()))

    def stop(self) -> None:
        self._watchdog.cancel()
        self.released.set()


@pytest.fixture
def slow_loads() -> Iterator[Callable[[str], SlowLoads]]:
    made: list[SlowLoads] = []

    def make(slow: str) -> SlowLoads:
        made.append(SlowLoads(slow))
        return made[-1]

    yield make
    for loads in made:
        loads.stop()


def test_a_slow_load_blocks_neither_other_models_nor_the_pool_s_queries(
    tmp_path: Path, slow_loads: Callable[[str], SlowLoads]
) -> None:
    loads = slow_loads("slow")
    pool = ModelPool(PoolConfig(cache_dir=tmp_path, device="cpu"), loader=loads)
    failures: list[BaseException] = []

    def load_slow() -> None:
        try:
            pool.get("slow")
        except RuntimeError as exc:
            failures.append(exc)

    loading = threading.Thread(target=load_slow)
    loading.start()
    assert loads.entered.wait(WATCHDOG_SECONDS)
    with pool.use("fast") as model:
        assert model is loads.models["fast"]
    assert pool.loaded() == [pool.key("fast")]
    assert pool.unload_idle() == []
    assert not loads.released.is_set(), "the pool waited for the slow load"
    loads.released.set()
    loading.join()
    assert [str(e) for e in failures] == ["model slow could not be loaded"]
    assert pool.loaded() == [pool.key("fast")]  # a failed load leaves nothing behind
    pool.get("fast")
    assert loads.calls == ["slow", "fast"]  # loaded once, kept


def test_a_model_is_loaded_once_for_concurrent_users(tmp_path: Path) -> None:
    gate = threading.Event()
    calls: list[str] = []

    def loader(key: ModelKey) -> WhisperModel:
        calls.append(key.name)
        gate.wait()
        return cast(WhisperModel, object())

    pool = ModelPool(PoolConfig(cache_dir=tmp_path, device="cpu"), loader=loader)
    got: list[WhisperModel] = []
    threads = [threading.Thread(target=lambda: got.append(pool.get("base"))) for _ in range(4)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join()
    assert calls == ["base"] and len(got) == 4 and len({id(m) for m in got}) == 1


async def test_heartbeats_go_on_while_a_model_loads(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    run_worker: Callable[..., Awaitable[Any]],
    tmp_path: Path,
    slow_loads: Callable[[str], SlowLoads],
) -> None:
    """A first load can take minutes (a hub download): the task's lease and the worker's record stay fresh."""
    created = await upload(client)
    loads = slow_loads(created["model"])
    engine = FasterWhisperEngine(ModelPool(PoolConfig(cache_dir=tmp_path, device="cpu"), loader=loads))
    worker = await run_worker(engine, lease_seconds=4, heartbeat_seconds=1, reap_seconds=0.5)

    async def load_started() -> bool:
        return loads.entered.is_set()

    await wait_for(load_started, timeout=30)
    leases: set[object] = set()
    beats: set[object] = set()

    async def both_refreshed_twice() -> bool:
        if loads.released.is_set():
            raise AssertionError("no heartbeat while the model was loading: the load froze the worker")
        async with sessions() as session:
            leases.add(await session.scalar(select(Task.lease_expires_at).where(Task.id == created["id"])))
            beats.add(
                await session.scalar(select(WorkerRecord.heartbeat_at).where(WorkerRecord.id == worker.worker_id))
            )
        return len(leases) >= 3 and len(beats) >= 3

    await wait_for(both_refreshed_twice, timeout=30)
