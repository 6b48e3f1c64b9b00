"""The service as a user runs it: `whisper-service serve` in its own process, real HTTP, real model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.audio import ENGLISH_CLIPS, clip, reference, wer
from tests.service import SCRIPT, Service

pytestmark = pytest.mark.model


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


def read_events(response: httpx.Response, timeout: float = 120) -> Iterator[tuple[str, dict[str, object]]]:
    """(event name, data) from a text/event-stream response; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    name, data = "message", []
    for line in response.iter_lines():
        assert time.monotonic() < deadline, "no end of the event stream in time"
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield name, json.loads("\n".join(data))
            name, data = "message", []


def test_task_events_follow_a_task_to_its_end(service: Service) -> None:
    with httpx.Client(base_url=service.url, timeout=60) as http:
        assert http.get("/v1/tasks/no-such-task/events").status_code == 404
        with clip("en_sonnet001.wav").open("rb") as f:  # 53 s: several progress steps
            # Sequential decoding (no VAD) reports progress segment by segment.
            task = http.post("/v1/tasks", files={"file": ("sonnet.wav", f)}, data={"vad_filter": "false"}).json()
        with http.stream("GET", f"/v1/tasks/{task['id']}/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = [data for name, data in read_events(response) if name == "task"]
        # The stream ended by itself once the task finished.
        statuses = [e["status"] for e in events]
        progress = [int(str(e["progress"])) for e in events]
        assert statuses[-1] == "completed" and "running" in statuses and progress == sorted(progress)
        assert progress[-1] == 100 and any(0 < p < 100 for p in progress), progress

        # The list stream announces new tasks, their progress, and deletions.
        with http.stream("GET", "/v1/tasks/events") as response:
            with clip("librivox_0880.wav").open("rb") as f:
                other = http.post("/v1/tasks", files={"file": ("short.wav", f)}).json()
            for name, data in read_events(response):
                if name == "task" and data["id"] == other["id"] and data["status"] == "completed":
                    assert http.delete(f"/v1/tasks/{other['id']}").status_code == 204
                elif name == "deleted":
                    assert data == {"id": other["id"]}
                    break


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def test_an_idle_model_is_unloaded_and_reloaded_by_the_next_task(tmp_path: Path, model_cache: Path) -> None:
    env = {"WHISPER_MODEL_IDLE_SECONDS": "2", "WHISPER_REAP_SECONDS": "0.5"}
    service = Service(tmp_path, model_cache, env=env)
    try:
        with httpx.Client(base_url=service.url, timeout=60) as http:

            def worker() -> dict[str, Any]:
                items = http.get("/v1/workers").json()["items"]
                assert items, "no worker registered yet"
                return dict(items[0])

            def transcribe() -> None:
                with clip("jfk.wav").open("rb") as f:
                    task = http.post("/v1/tasks", files={"file": ("jfk.wav", f)}, data={"dedupe": "false"}).json()
                assert wait_done(http, task["id"])["status"] == "completed"

            def models_become(expected: list[str]) -> None:
                deadline = time.monotonic() + 20
                while worker()["models"] != expected:
                    assert time.monotonic() < deadline, f"worker models stayed {worker()['models']}"
                    time.sleep(0.2)

            deadline = time.monotonic() + 30
            while not http.get("/v1/workers").json()["items"]:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            pid = int(worker()["pid"])
            transcribe()
            loaded = rss_mb(pid)
            assert worker()["models"] == ["base"]
            base = {m["id"]: m for m in http.get("/v1/models").json()["data"]}["base"]
            assert [(w["worker"], w["device"]) for w in base["loaded_on"]] == [(worker()["id"], "cpu")]
            models_become([])  # unloaded after 2 s without a task
            unloaded = rss_mb(pid)
            print(f"worker RSS with base {loaded:.0f} MB, after unloading {unloaded:.0f} MB")
            assert loaded - unloaded > 80, (loaded, unloaded)
            transcribe()  # reloads
            assert worker()["models"] == ["base"]
    finally:
        service.stop()
