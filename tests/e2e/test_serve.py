"""The service as a user runs it: `whisper-service serve` in its own process, real HTTP, real model."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.audio import ENGLISH_CLIPS, clip, reference, wer

pytestmark = pytest.mark.model
SCRIPT = shutil.which("whisper-service") or f"{sys.executable} -m app.cli"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """A running `whisper-service` process and its base URL."""

    def __init__(self, tmp_path: Path, model_cache: Path, *args: str, database_url: str | None = None) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "WHISPER_DATA_DIR": str(tmp_path),
            "WHISPER_MODEL_CACHE_DIR": str(model_cache),
            "WHISPER_PORT": str(self.port),
            "WHISPER_POLL_SECONDS": "0.1",
            "WHISPER_SHUTDOWN_GRACE_SECONDS": "5",
            **({"WHISPER_DATABASE_URL": database_url} if database_url else {}),
        }
        self.url = f"http://127.0.0.1:{self.port}"
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.log = (tmp_path / f"serve-{self.port}.log").open("w")
        self.proc = subprocess.Popen([*SCRIPT.split(), "serve", *args], env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("the service did not come up within 60 s")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.log.close()
        return code


@pytest.fixture
def service(tmp_path: Path, model_cache: Path) -> Iterator[Service]:
    running = Service(tmp_path, model_cache)
    yield running
    if running.proc.poll() is None:
        running.stop()


def wait_done(http: httpx.Client, task_id: str, timeout: float = 300) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, object] = http.get(f"/v1/tasks/{task_id}").json()
        if body["status"] in ("completed", "failed", "cancelled"):
            return body
        time.sleep(0.25)
    raise AssertionError(f"task {task_id} not finished within {timeout} s")


def test_every_english_clip_and_a_translation(service: Service) -> None:
    with httpx.Client(base_url=service.url, timeout=60) as http:
        ids = {}
        for name in ENGLISH_CLIPS:
            with clip(name).open("rb") as f:
                response = http.post("/v1/tasks", files={"file": (name, f)})
            assert response.status_code == 201, response.text
            ids[name] = response.json()["id"]
        with clip("es_asterisk_demo-nogo.wav").open("rb") as f:
            translation = http.post("/v1/tasks", files={"file": f}, data={"task_type": "translate"}).json()["id"]
        scores = {}
        for name, task_id in ids.items():
            task = wait_done(http, task_id)
            assert task["status"] == "completed", task
            result = task["result"]
            assert isinstance(result, dict)
            scores[name] = wer(reference(name), str(result["text"]))
        print("WER per clip:", {k: round(v, 3) for k, v in scores.items()})
        assert max(scores.values()) <= 0.25, scores
        task = wait_done(http, translation)
        assert task["status"] == "completed", task
        text = str(task["result"]["text"])  # type: ignore[index]
        expected = (
            "I'm sorry, but it was not possible to create the connection to the demonstration server in Digium. "
            "You can find useful information to solve the problem in the Asterisk console."
        )
        assert wer(expected, text) <= 0.5, text
    assert service.stop() == 0


def test_api_only_node_and_a_separate_worker_process(tmp_path: Path, model_cache: Path) -> None:
    api = Service(tmp_path, model_cache, "--workers", "0")
    worker: subprocess.Popen[bytes] | None = None
    try:
        with httpx.Client(base_url=api.url, timeout=60) as http:
            with clip("librivox_0880.wav").open("rb") as f:
                task_id = http.post("/v1/tasks", files={"file": f}).json()["id"]
            time.sleep(2)
            assert http.get(f"/v1/tasks/{task_id}").json()["status"] == "queued"  # no worker on this node
            worker = subprocess.Popen([*SCRIPT.split(), "worker"], env=api.env)
            task = wait_done(http, task_id, timeout=120)
            assert task["status"] == "completed"
            assert wer(reference("librivox_0880.wav"), str(task["result"]["text"])) <= 0.25  # type: ignore[index]
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
        assert api.stop() == 0


def test_a_worker_elsewhere_needs_only_the_database_url(tmp_path: Path, mariadb_url: str) -> None:
    """API-only node and a worker that shares nothing with it but the MariaDB URL (own cwd, no data dir)."""
    api_dir, worker_dir = tmp_path / "api-node", tmp_path / "worker-node"
    worker_dir.mkdir()
    api = Service(api_dir, api_dir / "models", "--workers", "0", database_url=mariadb_url)
    worker: subprocess.Popen[bytes] | None = None
    try:
        with httpx.Client(base_url=api.url, timeout=60) as http:
            with clip("librivox_0890.wav").open("rb") as f:
                task_id = http.post("/v1/tasks", files={"file": f}).json()["id"]
            env = {"PATH": os.environ["PATH"], "WHISPER_DATABASE_URL": mariadb_url, "HF_HUB_OFFLINE": "1"}
            worker = subprocess.Popen([*SCRIPT.split(), "worker"], env=env, cwd=worker_dir)
            task = wait_done(http, task_id, timeout=180)
            assert task["status"] == "completed", task
            assert wer(reference("librivox_0890.wav"), str(task["result"]["text"])) <= 0.25  # type: ignore[index]
            deadline = time.monotonic() + 15  # the record is refreshed every WHISPER_REAP_SECONDS (5 s)
            while (record := http.get("/v1/workers").json()["items"][0])["models"] != ["base"]:
                assert time.monotonic() < deadline, record
                time.sleep(0.5)
            assert record["alive"] and record["pid"] == worker.pid and record["running"] == []
        assert not (api_dir / "models").exists(), "the API node never touches a model"
        assert (worker_dir / "data" / "models" / "base" / "model.bin").exists()
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
        assert api.stop() == 0


def test_without_keys_the_server_stays_on_loopback(tmp_path: Path, model_cache: Path) -> None:
    service = Service(tmp_path, model_cache, "--host", "0.0.0.0", "--workers", "0")
    try:
        log = (tmp_path / f"serve-{service.port}.log").read_text()
        assert "refusing 0.0.0.0, listening on 127.0.0.1 only" in log
        assert "Uvicorn running on http://127.0.0.1:" in log
    finally:
        assert service.stop() == 0
