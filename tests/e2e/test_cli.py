"""The `whisper-service` command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.audio import clip, reference, wer
from tests.service import Service


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )


@pytest.mark.model
def test_transcribe_writes_subtitles_next_to_the_files(tmp_path: Path, model_cache: Path) -> None:
    env = {"WHISPER_DATA_DIR": str(tmp_path), "WHISPER_MODEL_CACHE_DIR": str(model_cache)}
    files = [str(clip("jfk.wav")), str(clip("en_sonnet001.wav"))]  # 11.0 s; 53.27 s, in batches
    result = cli("transcribe", *files, "--output-dir", str(tmp_path / "out"), "--formats", "srt,txt", env=env)
    assert result.returncode == 0, result.stderr
    # Each progress bar ends exactly at its total, never past it (it used to reach 53.300000000000004/53.3, with a
    # TqdmWarning about clamping and a negative time left).
    assert "TqdmWarning" not in result.stderr and "<-" not in result.stderr, result.stderr
    for name, total in (("jfk.wav", "11.0"), ("en_sonnet001.wav", "53.3")):
        frames = [f for f in re.split(r"[\r\n]", result.stderr) if f.startswith(f"{name}: ")]
        positions = [float(re.search(r"\| ([\d.]+)/", frame)[1]) for frame in frames]  # type: ignore[index]
        assert positions == sorted(positions) and max(positions) == float(total), frames
        assert f"100%|██████████| {total}/{total} [" in frames[-1], frames
    srt = (tmp_path / "out" / "jfk.srt").read_text()
    assert srt.startswith("1\n00:00:00,000 --> ")
    assert wer(reference("jfk.wav"), (tmp_path / "out" / "jfk.txt").read_text()) <= 0.25
    sonnet = (tmp_path / "out" / "en_sonnet001.srt").read_text()
    lines = [line for block in sonnet.split("\n\n") for line in block.splitlines()[2:]]
    assert len(sonnet.split("\n\n")) >= 8 and max(map(len, lines)) <= 42  # the default layout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "en_sonnet001.srt",
        "en_sonnet001.txt",
        "jfk.srt",
        "jfk.txt",
    ]


# A 1x1 PNG: FFmpeg would open it as an image stream with no audio (faster-whisper then fails on an empty tuple).
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000001"
    "e221bc330000000049454e44ae426082"
)


@pytest.mark.parametrize(("name", "data"), [("notes.txt", b"not audio"), ("img.png", PNG)])
def test_transcribe_reports_unreadable_files(tmp_path: Path, model_cache: Path, name: str, data: bytes) -> None:
    bad = tmp_path / name
    bad.write_bytes(data)
    env = {"WHISPER_DATA_DIR": str(tmp_path), "WHISPER_MODEL_CACHE_DIR": str(model_cache)}
    result = cli("transcribe", str(bad), env=env)
    assert result.returncode == 1 and "cannot decode" in result.stderr
    assert "not audio or video" in result.stderr and "tuple index" not in result.stderr, result.stderr


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


@pytest.mark.model
def test_check_reports_readiness(tmp_path: Path, model_cache: Path) -> None:
    env = {"WHISPER_DATA_DIR": str(tmp_path), "WHISPER_MODEL_CACHE_DIR": str(model_cache)}
    before = cli("check", env=env)
    assert before.returncode == 1 and "whisper-service migrate" in before.stderr
    assert cli("migrate", env=env).returncode == 0
    ready = cli("check", "--model", "base", env=env)
    assert ready.returncode == 0, ready.stderr
    missing = cli("check", "--model", "no-such-model", env={**env, "WHISPER_EXTRA_MODELS": "/nonexistent/model"})
    assert missing.returncode == 1 and "does not load" in missing.stderr
