"""Device and compute-type selection, and what the pool hands to faster-whisper (GPU paths without a GPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workers import models
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
