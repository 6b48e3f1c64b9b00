"""Settings: environment variables, seed aliases, and clear errors naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings, describe_error


def test_defaults_and_derived_values(tmp_path: pytest.TempPathFactory) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.default_model == "base"
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'whisper.db'}"
    assert settings.model_dir == tmp_path / "models"


def test_environment_variables_and_seed_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPER_PORT", "9001")
    monkeypatch.setenv("WHISPER_DEVICE_INDEX", "0, 1")
    monkeypatch.setenv("WHISPER_ALLOWED_HOSTS", "127.0.0.1,10.0.0.0/8")
    monkeypatch.setenv("MODEL_SIZE", "tiny.en")
    monkeypatch.setenv("LANGUAGE", "auto")
    settings = Settings()
    assert settings.port == 9001
    assert settings.device_index == [0, 1]
    assert settings.allowed_hosts == ["127.0.0.1", "10.0.0.0/8"]
    assert settings.default_model == "tiny.en"
    assert settings.default_language is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WHISPER_PORT", "eighty"),
        ("WHISPER_DEVICE", "tpu"),
        ("WHISPER_COMPUTE_TYPE", "int3"),
        ("WHISPER_MAX_UPLOAD_BYTES", "-5"),
        ("WHISPER_WORKER_CONCURRENCY", "0"),
    ],
)
def test_invalid_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert variable in describe_error(info.value)


def test_heartbeat_must_fit_in_the_lease() -> None:
    with pytest.raises(ValidationError, match="WHISPER_HEARTBEAT_SECONDS"):
        Settings(lease_seconds=10, heartbeat_seconds=8)


def test_cli_refuses_to_start_with_a_bad_value(tmp_path: pytest.TempPathFactory) -> None:
    env = {"WHISPER_PORT": "not-a-port", "WHISPER_DATA_DIR": str(tmp_path), "PATH": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "WHISPER_PORT" in proc.stderr and "not-a-port" in proc.stderr


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`WHISPER_{name.upper()}`" not in readme]
    assert missing == []
