"""The `whisper-service` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.audio import clip, reference, wer
from tests.service import Service

pytestmark = pytest.mark.model


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )


def test_transcribe_writes_subtitles_next_to_the_files(tmp_path: Path, model_cache: Path) -> None:
    env = {"WHISPER_DATA_DIR": str(tmp_path), "WHISPER_MODEL_CACHE_DIR": str(model_cache)}
    result = cli(
        "transcribe", str(clip("jfk.wav")), "--output-dir", str(tmp_path / "out"), "--formats", "srt,txt", env=env
    )
    assert result.returncode == 0, result.stderr
    assert "100%" in result.stderr  # the progress bar reached the end
    srt = (tmp_path / "out" / "jfk.srt").read_text()
    assert srt.startswith("1\n00:00:00,000 --> ")
    assert wer(reference("jfk.wav"), (tmp_path / "out" / "jfk.txt").read_text()) <= 0.25
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["jfk.srt", "jfk.txt"]


def test_transcribe_reports_unreadable_files(tmp_path: Path, model_cache: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio")
    env = {"WHISPER_DATA_DIR": str(tmp_path), "WHISPER_MODEL_CACHE_DIR": str(model_cache)}
    result = cli("transcribe", str(bad), env=env)
    assert result.returncode == 1 and "cannot decode" in result.stderr


def test_migrate_creates_the_schema(tmp_path: Path) -> None:
    result = cli("migrate", env={"WHISPER_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "whisper.db").exists() and "at head" in result.stderr


def test_tasks_list_show_and_cancel_talk_to_a_server(tmp_path: Path, model_cache: Path) -> None:
    service = Service(tmp_path / "server", model_cache, "--workers", "0", env={"WHISPER_API_KEYS": "cli:cli-key-0123"})
    try:
        env = {"WHISPER_URL": service.url, "WHISPER_API_KEY": "cli-key-0123"}
        with clip("jfk.wav").open("rb") as f:
            created = httpx.post(
                f"{service.url}/v1/tasks",
                files={"file": ("jfk.wav", f)},
                headers={"Authorization": "Bearer cli-key-0123"},
            ).json()
        listed = cli("tasks", "list", env=env)
        assert listed.returncode == 0, listed.stderr
        assert created["id"] in listed.stdout and "queued" in listed.stdout and "jfk.wav" in listed.stdout
        shown = cli("tasks", "show", created["id"], env=env)
        assert shown.returncode == 0 and json.loads(shown.stdout)["id"] == created["id"]
        cancelled = cli("tasks", "cancel", created["id"], env=env)
        assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"{created['id']}: cancelled"
        again = cli("tasks", "cancel", created["id"], env=env)
        assert again.returncode == 1 and "409" in again.stderr
        wrong_key = cli("tasks", "list", env={**env, "WHISPER_API_KEY": "nope"})
        assert wrong_key.returncode == 1 and "401" in wrong_key.stderr
        assert cli("tasks", "show", created["id"], "--format", "srt", env=env).returncode == 1  # no result: 409
    finally:
        service.stop()
    unreachable = cli("tasks", "list", env={"WHISPER_URL": service.url})
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr


def test_check_reports_readiness(tmp_path: Path, model_cache: Path) -> None:
    env = {"WHISPER_DATA_DIR": str(tmp_path), "WHISPER_MODEL_CACHE_DIR": str(model_cache)}
    before = cli("check", env=env)
    assert before.returncode == 1 and "whisper-service migrate" in before.stderr
    assert cli("migrate", env=env).returncode == 0
    ready = cli("check", "--model", "base", env=env)
    assert ready.returncode == 0, ready.stderr
    missing = cli("check", "--model", "no-such-model", env={**env, "WHISPER_EXTRA_MODELS": "/nonexistent/model"})
    assert missing.returncode == 1 and "does not load" in missing.stderr
