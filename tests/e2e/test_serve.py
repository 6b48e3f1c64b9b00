"""The service as a user runs it: `whisper-service serve` in its own process, real HTTP, real model."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from faster_whisper import decode_audio

from app.supervisor import KILL_AFTER_GRACE_SECONDS
from tests.audio import ENGLISH_CLIPS, clip, reference, wer
from tests.media_files import write_audio
from tests.service import SCRIPT, Service


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


@pytest.mark.model
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


@pytest.mark.model
def test_api_only_node_and_a_separate_worker_process(tmp_path: Path, model_cache: Path) -> None:
    api = Service(tmp_path, model_cache, "--workers", "0")
    worker: subprocess.Popen[bytes] | None = None
    try:
        with httpx.Client(base_url=api.url, timeout=60) as http:
            with clip("librivox_0880.wav").open("rb") as f:
                task_id = http.post("/v1/tasks", files={"file": f}).json()["id"]
            assert http.get("/v1/workers").json()["items"] == []  # no worker on this node
            worker = subprocess.Popen([*SCRIPT.split(), "worker"], env=api.env)
            task = wait_done(http, task_id, timeout=120)
            assert task["status"] == "completed"
            assert wer(reference("librivox_0880.wav"), str(task["result"]["text"])) <= 0.25  # type: ignore[index]
            # the separate worker ran it (worker ids are name:pid:random), and it is the only worker there is
            with sqlite3.connect(tmp_path / "whisper.db") as db:
                [(owner, attempts)] = db.execute("SELECT lease_owner, attempts FROM tasks WHERE id = ?", (task_id,))
            assert owner.split(":")[1] == str(worker.pid) and attempts == 1
            assert [w["pid"] for w in http.get("/v1/workers").json()["items"]] == [worker.pid]
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
        assert api.stop() == 0


@pytest.mark.model
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
            env = {
                "PATH": os.environ["PATH"],
                "HOME": str(worker_dir),
                **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"},  # the code under test
                "WHISPER_DATABASE_URL": mariadb_url,
                "HF_HUB_OFFLINE": "1",
            }
            worker = subprocess.Popen([*SCRIPT.split(), "worker"], env=env, cwd=worker_dir)
            task = wait_done(http, task_id, timeout=180)
            assert task["status"] == "completed", task
            assert wer(reference("librivox_0890.wav"), str(task["result"]["text"])) <= 0.25  # type: ignore[index]
            deadline = time.monotonic() + 15  # the record is refreshed every WHISPER_REAP_SECONDS (5 s)
            # A refresh during the task shows the model loaded and the task running: wait for the one after it.
            record = http.get("/v1/workers").json()["items"][0]
            while (record["models"], record["running"]) != (["base"], []):
                assert time.monotonic() < deadline, record
                time.sleep(0.5)
                record = http.get("/v1/workers").json()["items"][0]
            assert record["alive"] and record["pid"] == worker.pid
        assert not (api_dir / "models").exists(), "the API node never touches a model"
        # the per-user data directory, wherever the worker was started
        assert (worker_dir / ".local" / "share" / "whisper-service" / "models" / "base" / "model.bin").exists()
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
        assert api.stop() == 0


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


@pytest.mark.model
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


@pytest.mark.model
def test_an_idle_model_is_unloaded_and_reloaded_by_the_next_task(tmp_path: Path, model_cache: Path) -> None:
    # On CPU the model's weights live in the worker's resident memory (on a GPU they would not show there).
    env = {"WHISPER_MODEL_IDLE_SECONDS": "2", "WHISPER_REAP_SECONDS": "0.5", "WHISPER_DEVICE": "cpu"}
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
            before = rss_mb(pid)
            transcribe()
            loaded = rss_mb(pid)
            assert worker()["models"] == ["base"]
            base = {m["id"]: m for m in http.get("/v1/models").json()["data"]}["base"]
            assert [(w["worker"], w["device"]) for w in base["loaded_on"]] == [(worker()["id"], "cpu")]
            models_become([])  # unloaded after 2 s without a task
            unloaded = rss_mb(pid)
            print(f"worker RSS before {before:.0f} MB, with base {loaded:.0f} MB, after unloading {unloaded:.0f} MB")
            # Most of what loading and running the model added is given back (the rest: decoder buffers, caches).
            assert loaded - unloaded > (loaded - before) / 2, (before, loaded, unloaded)
            transcribe()  # reloads
            assert worker()["models"] == ["base"]
    finally:
        service.stop()


GRACE_SECONDS = 1
GIVE_BACK_ENV = {
    "WHISPER_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
    # Leases far longer than the test: only a release can put the task back in the queue.
    "WHISPER_LEASE_SECONDS": "300",
    "WHISPER_HEARTBEAT_SECONDS": "30",
    "WHISPER_LOG_LEVEL": "INFO",  # the worker's log shows when decoding starts
}
DECODING = "windows in shared batches"
"""The worker's last log line before the batch scheduler's first CTranslate2 generate call for the task."""


@pytest.fixture(scope="module")
def long_speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """long_en.flac three times over (5.5 minutes): its first batch of 8 windows is one long CTranslate2 call."""
    samples = decode_audio(str(clip("long_en.flac")), sampling_rate=16_000)
    pcm = (np.tile(samples, 3) * 32767).astype(np.int16)
    return write_audio(tmp_path_factory.mktemp("long") / "long_en_x3.wav", pcm, container="wav", codec="pcm_s16le")


def start_long_task(http: httpx.Client, audio: Path, worker_log: Path) -> str:
    """Speech decoded in batches, each a C call that cannot be interrupted (a wide beam makes it longer); returns
    once the worker is about to make the first call or in it."""
    with audio.open("rb") as f:
        response = http.post("/v1/tasks", files={"file": (audio.name, f)}, data={"dedupe": "false", "beam_size": "10"})
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    deadline = time.monotonic() + 120
    while DECODING not in worker_log.read_text():
        assert http.get(f"/v1/tasks/{task_id}").json()["status"] in ("queued", "running")
        assert time.monotonic() < deadline, "the worker did not start decoding"
        time.sleep(0.1)
    assert http.get(f"/v1/tasks/{task_id}").json()["status"] == "running"
    return task_id


def stored_task(data_dir: Path, task_id: str) -> tuple[object, ...]:
    """(status, attempts, lease owner, lease token) as the database holds them."""
    with closing(sqlite3.connect(data_dir / "whisper.db")) as db:
        row = db.execute(
            "SELECT status, attempts, lease_owner, lease_token FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
    return tuple(row)


def test_sigterm_to_serve_gives_a_decoding_task_back_before_exiting(
    tmp_path: Path, model_cache: Path, long_speech: Path
) -> None:
    service = Service(tmp_path, model_cache, env=GIVE_BACK_ENV)
    log = tmp_path / f"serve-{service.port}.log"  # the embedded worker's lines too
    with httpx.Client(base_url=service.url, timeout=60) as http:
        task_id = start_long_task(http, long_speech, log)
    assert service.stop() == 0
    # Back in the queue, the attempt not counted, no lease left: the next worker starts it at once.
    assert stored_task(tmp_path, task_id) == ("queued", 0, None, None)
    assert f"task {task_id}: given back to the queue (shutdown)" in log.read_text()


def test_sigterm_to_a_worker_gives_a_decoding_task_back_and_exits_at_once(
    tmp_path: Path, model_cache: Path, long_speech: Path
) -> None:
    api = Service(tmp_path, model_cache, "--workers", "0", env=GIVE_BACK_ENV)
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen([*SCRIPT.split(), "worker"], env=api.env, stdout=out, stderr=out)
    try:
        with httpx.Client(base_url=api.url, timeout=60) as http:
            task_id = start_long_task(http, long_speech, log)
        worker.send_signal(signal.SIGTERM)
        # Within what `serve` allows its workers before SIGKILL, while the decode would run much longer.
        assert worker.wait(timeout=GRACE_SECONDS + KILL_AFTER_GRACE_SECONDS) == 0
        assert stored_task(tmp_path, task_id) == ("queued", 0, None, None)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        assert api.stop() == 0


def running(pid: int) -> bool:
    """Whether the process runs (neither gone nor a zombie its new parent has yet to reap)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_an_embedded_worker_whose_serve_was_killed_gives_its_task_back_and_exits(
    tmp_path: Path, model_cache: Path, long_speech: Path
) -> None:
    """SIGKILL (or the OOM killer) gives `serve` no chance to stop its workers: they notice it is gone themselves,
    instead of running on with no API server and no one to stop them."""
    service = Service(tmp_path, model_cache, env=GIVE_BACK_ENV)
    log = tmp_path / f"serve-{service.port}.log"
    with httpx.Client(base_url=service.url, timeout=60) as http:
        task_id = start_long_task(http, long_speech, log)
        [worker] = http.get("/v1/workers").json()["items"]
    service.proc.kill()
    service.proc.wait()
    service.log.close()
    deadline = time.monotonic() + 60
    while running(worker["pid"]):
        assert time.monotonic() < deadline, "the orphaned worker is still running"
        time.sleep(0.2)
    assert stored_task(tmp_path, task_id) == ("queued", 0, None, None)
    assert f"task {task_id}: given back to the queue (shutdown)" in log.read_text()
