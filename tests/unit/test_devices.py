"""Device and compute-type selection, and what the pool hands to faster-whisper (GPU paths without a GPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app import startup
from app.errors import StartupCheckFailed
from app.settings import Settings, describe_error
from workers import models
from workers.main import build_engine
from workers.models import ModelPool, PoolConfig, resolve_compute_type, resolve_device


def test_auto_device_follows_ctranslate2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.ctranslate2, "get_cuda_device_count", lambda: 2)
    assert resolve_device("auto") == "cuda"
    monkeypatch.setattr(models.ctranslate2, "get_cuda_device_count", lambda: 0)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cuda") == "cuda"


def test_compute_type_defaults() -> None:
    assert resolve_compute_type("auto", "cuda") == "float16"
    assert resolve_compute_type("auto", "cpu") == "int8"
    assert resolve_compute_type("int8_float16", "cuda") == "int8_float16"


def test_pool_spreads_a_model_over_the_configured_gpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    loads: list[dict[str, Any]] = []

    class RecordingModel:
        def __init__(self, location: str, **kwargs: Any) -> None:
            loads.append({"location": location, **kwargs})

    monkeypatch.setattr(models, "WhisperModel", RecordingModel)
    monkeypatch.setattr(models.ctranslate2, "get_cuda_device_count", lambda: 2)
    pool = ModelPool(PoolConfig(cache_dir=tmp_path, device="auto", device_index=(0, 1), num_workers=2))
    first = pool.get("large-v3")
    assert pool.get("large-v3") is first  # loaded once
    assert loads == [
        {
            "location": "large-v3",
            "device": "cuda",
            "device_index": [0, 1],
            "compute_type": "float16",
            "cpu_threads": 0,
            "num_workers": 2,
            "local_files_only": False,
        }
    ]
    assert [(k.name, k.device, k.compute_type) for k in pool.loaded()] == [("large-v3", "cuda", "float16")]


@pytest.mark.parametrize(
    ("env", "device", "indexes"),
    [
        ({"WHISPER_DEVICE": "cuda:1"}, "cuda", [1]),
        ({"WHISPER_DEVICE": "cuda:0,1"}, "cuda", [0, 1]),
        ({"WHISPER_DEVICE": "cuda:1", "WHISPER_DEVICE_INDEX": "1"}, "cuda", [1]),  # saying it twice is fine
        ({"WHISPER_DEVICE": "cuda", "WHISPER_DEVICE_INDEX": "1"}, "cuda", [1]),
        ({"WHISPER_DEVICE": "cpu"}, "cpu", [0]),
    ],
)
def test_a_device_with_its_gpu_index(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], device: str, indexes: list[int]
) -> None:
    """`WHISPER_DEVICE=cuda:1` (as torch and other Whisper servers write it) is cuda with WHISPER_DEVICE_INDEX=1."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.device, settings.device_index) == (device, indexes)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"WHISPER_DEVICE": "cuda:1", "WHISPER_DEVICE_INDEX": "0"},
            "WHISPER_DEVICE='cuda:1' and WHISPER_DEVICE_INDEX='0' name different GPUs; set one of them",
        ),
        ({"WHISPER_DEVICE": "cuda:0", "WHISPER_DEVICE_INDEX": "0,1"}, "name different GPUs"),
        ({"WHISPER_DEVICE": "cpu:1"}, "WHISPER_DEVICE='cpu:1': only cuda takes GPU indexes"),
        ({"WHISPER_DEVICE": "cuda:first"}, "WHISPER_DEVICE='cuda:first': after cuda: give GPU indexes"),
        ({"WHISPER_DEVICE": "cuda:-1"}, "give GPU indexes, such as cuda:1"),
        ({"WHISPER_DEVICE": "cuda:"}, "give GPU indexes"),
        ({"WHISPER_DEVICE": "cuda:1", "WHISPER_DEVICE_INDEX": "x"}, "WHISPER_DEVICE_INDEX item 1"),
    ],
)
def test_a_device_index_that_cannot_be_meant_is_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert message in describe_error(info.value)


def test_the_index_of_cuda_n_reaches_the_pool_and_the_gpu_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, device="cuda:1", worker_concurrency=2, batching=False)
    engine = build_engine(settings)
    assert (engine.pool.config.device, engine.pool.config.device_index) == ("cuda", (1,))
    assert engine.pool.config.num_workers == 2  # without batching, one device: every concurrent task on it
    assert (engine.describe().device, engine.describe().device_index) == ("cuda", [1])  # what /v1/workers shows
    monkeypatch.setattr(startup, "cuda_device_count", lambda: 2)
    startup.check_device(settings)
    monkeypatch.setattr(startup, "cuda_device_count", lambda: 1)
    with pytest.raises(StartupCheckFailed, match=r"^WHISPER_DEVICE_INDEX: no GPU 1 here .*WHISPER_DEVICE=cuda:N"):
        startup.check_device(settings)


def test_with_batching_each_gpu_holds_one_replica_fed_by_its_own_decode_thread(tmp_path: Path) -> None:
    """WHISPER_DEVICE_INDEX=0,1 on CUDA: one replica per GPU, two decode threads, batches of 16 (the CUDA default),
    float16, and twice a batch of tasks claimed at once. (Built without loading a model: no GPU here.)"""
    engine = build_engine(Settings(data_dir=tmp_path, device="cuda", device_index=[0, 1]))
    assert engine.pool.config.num_workers == 1 and engine.pool.config.device_index == (0, 1)
    assert engine.scheduler is not None and len(engine.scheduler._threads) == 2
    info = engine.describe()
    assert (info.device, info.compute_type, info.batch_size, info.default_concurrency) == ("cuda", "float16", 16, 32)
    engine.scheduler.close()

    cpu = build_engine(Settings(data_dir=tmp_path, device="cpu"))
    assert cpu.scheduler is not None and len(cpu.scheduler._threads) == 1
    assert (cpu.describe().batch_size, cpu.describe().compute_type, cpu.describe().default_concurrency) == (
        8,
        "int8",
        16,
    )
    cpu.scheduler.close()

    chosen = build_engine(Settings(data_dir=tmp_path, device="cpu", batch_size=4, worker_concurrency=3))
    assert chosen.describe().batch_size == 4
    assert chosen.scheduler is not None
    chosen.scheduler.close()

    off = build_engine(Settings(data_dir=tmp_path, device="cpu", batching=False))
    assert off.scheduler is None and off.describe().batch_size == 0 and off.describe().default_concurrency == 1
