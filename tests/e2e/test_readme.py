"""The README's commands, run the way it shows them against a started server, so the README cannot drift.

Blocks marked `<!-- readme-test: shell -->` run in order in one bash (so `$TASK` carries over), from a copy of the
project's `examples/` folder, with the venv's commands on PATH (what `. .venv/bin/activate` does); blocks marked
`<!-- readme-test: python -->` run with the venv's python. Only the port changes: the server listens on a free one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.settings import check_webhook_secret
from tests.audio import wer
from tests.service import Service

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
BLOCK = re.compile(r"<!-- readme-test: (\w+) -->\n```\w*\n(.*?)\n```", re.DOTALL)
BOUNDARY = "=== next README block ==="


def blocks(kind: str) -> list[str]:
    """The README's code blocks marked for this test, in order."""
    return [code for marked, code in BLOCK.findall(README) if marked == kind]


def on_port(code: str, port: int) -> str:
    return code.replace("127.0.0.1:8000", f"127.0.0.1:{port}")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A new user's checkout as far as the README's commands see it: the shipped example clip."""
    shutil.copytree(ROOT / "examples", tmp_path / "project" / "examples")
    return tmp_path / "project"


@pytest.fixture
def user_env(tmp_path: Path, model_cache: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ['PATH']}",  # what `. .venv/bin/activate` does
        "HOME": str(tmp_path / "home"),  # the per-user data directory of this "user"
        "WHISPER_MODEL_CACHE_DIR": str(model_cache),  # the test run's assembled model, not a second copy
    }


def test_the_marked_blocks_are_found() -> None:
    """The test below runs what the README shows in First transcription, not a subset that went missing."""
    shell = "\n".join(blocks("shell"))
    for command in ("curl", "whisper-service tasks", "whisper-service transcribe", "--data-binary"):
        assert command in shell, command
    assert all("--fail-with-body" in line for line in shell.splitlines() if line.startswith(("curl", "TASK=")))
    assert "examples/jfk.mp3" in shell and "../shared/audio/" not in README  # clips of the dev workspace
    assert len(blocks("python")) == 1 and "from openai import OpenAI" in blocks("python")[0]


@pytest.mark.model
def test_the_readme_commands_work_as_shown(
    tmp_path: Path, model_cache: Path, workdir: Path, user_env: dict[str, str]
) -> None:
    service = Service(tmp_path / "server", model_cache)
    try:
        script = f"\nprintf '\\n{BOUNDARY}\\n'\n".join(on_port(code, service.port) for code in blocks("shell"))
        shell = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=workdir,
            env={**user_env, "WHISPER_URL": service.url},  # the CLI's default URL, on this test's port
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert shell.returncode == 0, f"stdout:\n{shell.stdout}\nstderr:\n{shell.stderr}"
        created, raw_body, cli, _ = shell.stdout.split(f"\n{BOUNDARY}\n")
        task_id = created.split("\n", 1)[0]
        assert re.fullmatch(r"[0-9a-f-]{36}", task_id), created
        with httpx.Client(base_url=service.url) as http:
            task = http.get(f"/v1/tasks/{task_id}").json()
        assert task["status"] == "completed", task  # the event stream ended with the task
        assert wer(JFK, task["result"]["text"]) <= 0.1, task
        assert f'"id":"{task_id}"' in created and created.count("country") >= 2, created  # the task, then its SRT
        assert re.search(r"^1\n00:00:00,\d{3} --> 00:00:\d\d,\d{3}\n", created, re.MULTILINE), created
        assert json.loads(raw_body)["status"] in ("queued", "running", "completed"), raw_body
        assert task_id in cli and "country" in cli, cli  # `tasks list`, then `tasks show --format txt`
        assert "country" in (workdir / "examples" / "jfk.txt").read_text()
        assert "00:00:00,000 --> " in (workdir / "examples" / "jfk.srt").read_text()

        [snippet] = blocks("python")
        client = subprocess.run(
            [sys.executable, "-c", on_port(snippet, service.port)],
            cwd=workdir,
            env=user_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert client.returncode == 0, client.stderr
        text, *events_printed = client.stdout.splitlines()
        assert wer(JFK, text) <= 0.1, client.stdout
        assert any("transcript.text.delta" in line for line in events_printed), client.stdout
        assert "transcript.text.done" in events_printed[-1], client.stdout
    finally:
        assert service.stop() == 0


def test_the_webhook_secret_recipe_makes_a_valid_secret() -> None:
    [recipe] = re.findall(r"`(python3 -c \"import base64[^`]*)`", README)
    made = subprocess.run(["bash", "-c", recipe], capture_output=True, text=True, check=True).stdout.strip()
    check_webhook_secret(made)  # raises if the README's recipe makes a secret the service refuses
