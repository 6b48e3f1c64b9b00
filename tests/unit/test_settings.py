"""Settings: environment variables, seed aliases, and clear errors naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from app.schemas.tasks import ChineseScript
from app.settings import ChineseScriptName, Settings, describe_error


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
        ("WHISPER_WORKER_CONCURRENCY", "-1"),
        ("WHISPER_BATCH_SIZE", "129"),
        ("WHISPER_BATCHING", "sometimes"),
        ("WHISPER_KEY_CACHE_SECONDS", "-1"),
        ("WHISPER_KEY_CACHE_SECONDS", "3600"),
        ("WHISPER_DEFAULT_CHINESE_SCRIPT", "klingon"),
    ],
)
def test_invalid_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert variable in describe_error(info.value)


def test_default_chinese_script_takes_the_request_values(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(get_args(ChineseScriptName)) == {script.value for script in ChineseScript}
    assert Settings().default_chinese_script == "none"
    monkeypatch.setenv("WHISPER_DEFAULT_CHINESE_SCRIPT", "taiwan")
    assert Settings().default_chinese_script == "taiwan"
    monkeypatch.setenv("WHISPER_DEFAULT_CHINESE_SCRIPT", "")  # as `VAR=` in a compose file leaves it
    assert Settings().default_chinese_script == "none"


def test_heartbeat_must_fit_in_the_lease() -> None:
    with pytest.raises(ValidationError, match="WHISPER_HEARTBEAT_SECONDS"):
        Settings(lease_seconds=10, heartbeat_seconds=8)


@pytest.mark.parametrize(
    ("variable", "value"), [("WHISPER_PORT", "not-a-port"), ("WHISPER_DEFAULT_CHINESE_SCRIPT", "zh")]
)
def test_cli_refuses_to_start_with_a_bad_value(tmp_path: pytest.TempPathFactory, variable: str, value: str) -> None:
    env = {variable: value, "WHISPER_DATA_DIR": str(tmp_path), "PATH": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    line = next(line for line in proc.stderr.splitlines() if variable in line)
    assert repr(value) in line, proc.stderr


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`WHISPER_{name.upper()}`" not in readme]
    assert missing == []


SECRETS = {
    "WHISPER_API_KEYS": "alice:alice-secret-key-1,admin:admin-secret-key-2",
    "WHISPER_ACCESS_TOKEN": "seed-access-token-3",
    "WHISPER_WEBHOOK_SECRET": "whsec_" + "c2VjcmV0LXdlYmhvb2stc2lnbmluZy1rZXk=",
    "WHISPER_LLM_API_KEY": "sk-llm-secret-key-4",
    "WHISPER_DATABASE_URL": "mysql+asyncmy://ws:db-password-5@db.example/ws",
}


def secret_parts() -> list[str]:
    return [
        "alice-secret-key-1",
        "admin-secret-key-2",
        "seed-access-token-3",
        "c2VjcmV0LXdlYmhvb2st",
        "sk-llm-secret-key-4",
        "db-password-5",
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"WHISPER_LEASE_SECONDS": "10", "WHISPER_HEARTBEAT_SECONDS": "8"},  # an error about two fields
        {"WHISPER_LLM_CONTEXT_TOKENS": "1024", "WHISPER_LLM_MAX_OUTPUT_TOKENS": "1000"},
        {"WHISPER_API_KEYS": "alice:alice-secret-key-1,bob:short"},  # an error about a secret itself
    ],
)
def test_errors_never_print_a_secret(monkeypatch: pytest.MonkeyPatch, bad: dict[str, str]) -> None:
    for name, value in {**SECRETS, **bad}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    shown = describe_error(info.value) + "\n" + str(info.value)
    assert [part for part in secret_parts() if part in shown] == []
    assert "WHISPER_" in describe_error(info.value)


def test_cli_error_about_two_fields_prints_no_secret() -> None:
    env = {**SECRETS, "WHISPER_LEASE_SECONDS": "10", "WHISPER_HEARTBEAT_SECONDS": "8", "PATH": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "WHISPER_HEARTBEAT_SECONDS" in proc.stderr
    assert [part for part in secret_parts() if part in proc.stderr] == []
