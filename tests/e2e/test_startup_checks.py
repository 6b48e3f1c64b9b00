"""Configurations that cannot work stop the process at start: one line naming the variable, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app import startup
from app.errors import StartupCheckFailed
from app.settings import Settings, describe_error


def start(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI; a check that does not fire would leave serve or worker running, so a timeout fails the test."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("WHISPER_") and k != "LANGUAGE"}
    base |= {"WHISPER_DATA_DIR": str(tmp_path), "WHISPER_PORT": "1", "WHISPER_LOG_FORMAT": "text"}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env=base | env, capture_output=True, text=True, timeout=120
    )


def assert_refused(proc: subprocess.CompletedProcess[str], variable: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert variable in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", [["serve", "--workers", "0"], ["worker"]])
def test_an_unknown_default_model(tmp_path: Path, command: list[str]) -> None:
    proc = start(*command, env={"WHISPER_DEFAULT_MODEL": "no-such-model"}, tmp_path=tmp_path)
    assert_refused(proc, "WHISPER_DEFAULT_MODEL")
    assert "no-such-model" in proc.stderr


def test_an_unknown_preloaded_model(tmp_path: Path) -> None:
    proc = start("worker", env={"WHISPER_PRELOAD_MODELS": "base,tiny.xx"}, tmp_path=tmp_path)
    assert_refused(proc, "WHISPER_PRELOAD_MODELS")


def test_without_downloads_a_hub_default_model_must_be_preloaded(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, allow_model_downloads=False, default_model="small")
    with pytest.raises(StartupCheckFailed, match="WHISPER_DEFAULT_MODEL: unknown model 'small'"):
        startup.check_models(settings)
    startup.check_models(settings.model_copy(update={"preload_models": ["small"]}))


def test_cuda_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(startup, "cuda_device_count", lambda: 0)  # what CTranslate2 says on a machine without one
    with pytest.raises(StartupCheckFailed, match=r"^WHISPER_DEVICE: cuda, but CTranslate2 sees no CUDA GPU"):
        startup.check_device(Settings(device="cuda"))
    startup.check_device(Settings(device="auto"))  # auto falls back to the CPU
    monkeypatch.setattr(startup, "cuda_device_count", lambda: 2)
    startup.check_device(Settings(device="cuda", device_index=[0, 1]))
    with pytest.raises(StartupCheckFailed, match=r"^WHISPER_DEVICE_INDEX: no GPU 2"):
        startup.check_device(Settings(device="cuda", device_index=[0, 2]))


def test_the_cli_checks_the_device_where_models_run(tmp_path: Path) -> None:
    """Where models run, the CLI refuses a GPU this machine lacks (none at all, or one past its last)."""
    gpus = startup.cuda_device_count()
    for command in (["worker"], ["transcribe", "missing.wav"]):
        proc = start(*command, env={"WHISPER_DEVICE": "cuda", "WHISPER_DEVICE_INDEX": str(gpus)}, tmp_path=tmp_path)
        assert_refused(proc, "WHISPER_DEVICE")


@pytest.mark.parametrize("value", ["10.0.0.0/33", "10.0.0.0/8,192.168.1.300/24", "fe80::/129", "10.0.0.0/x"])
def test_an_invalid_cidr_in_the_allowlist(tmp_path: Path, value: str) -> None:
    assert_refused(start("migrate", env={"WHISPER_ALLOWED_HOSTS": value}, tmp_path=tmp_path), "WHISPER_ALLOWED_HOSTS")


def test_valid_allowlist_entries() -> None:
    entries = ["127.0.0.1", "10.0.0.0/8", "10.0.0.1/8", "::1", "fd00::/8", "media.internal", "localhost"]
    assert Settings(allowed_hosts=entries).allowed_hosts == entries


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:p@db/ws",
        "mysql://u:p@db/ws",  # the sync driver
        "sqlite:///x.db",
        "mysql+pymysql://u:p@db/ws",
        "not a url",
    ],
)
def test_a_database_url_with_the_wrong_scheme(tmp_path: Path, url: str) -> None:
    for command in ("migrate", "serve", "worker"):
        proc = start(command, env={"WHISPER_DATABASE_URL": url}, tmp_path=tmp_path)
        assert_refused(proc, "WHISPER_DATABASE_URL")
        assert ":p@" not in proc.stderr  # the URL may hold a password: not printed
    with pytest.raises(ValidationError) as info:
        Settings(database_url=url)
    assert "mysql+asyncmy://" in describe_error(info.value)


def test_a_worker_on_an_unmigrated_database(tmp_path: Path) -> None:
    proc = start("worker", env={}, tmp_path=tmp_path)
    assert_refused(proc, "WHISPER_DATABASE_URL")
    assert "whisper-service migrate" in proc.stderr


def test_an_unreachable_database(tmp_path: Path) -> None:
    url = "mysql+asyncmy://whisper:secret-pw@127.0.0.1:1/whisper"  # nothing listens on port 1
    for command in ("migrate", "serve", "worker"):
        proc = start(command, env={"WHISPER_DATABASE_URL": url}, tmp_path=tmp_path)
        assert_refused(proc, "WHISPER_DATABASE_URL")
        assert "unreachable" in proc.stderr and "secret-pw" not in proc.stderr
