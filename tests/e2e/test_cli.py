"""The `whisper-service` command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.audio import clip, reference, wer

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
