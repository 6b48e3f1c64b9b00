"""A server asked to listen beyond loopback with no key anywhere is never open: the first `serve` makes an admin
key and logs it once (two nodes starting together make one), and `whisper-service keys` manages the rest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.service import Service

KEY = re.compile(r"wsk_[A-Za-z0-9_-]{43}")
WRONG = "wsk_this-is-not-the-key-but-looks-like-one-00000"
CACHE_SECONDS = 1


def keys_command(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WHISPER_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "keys", *args], env=env, capture_output=True, text=True, timeout=120
    )


def status(node: Service, headers: dict[str, str]) -> int:
    return httpx.get(f"{node.url}/v1/tasks", headers=headers, timeout=10).status_code


def wait_status(node: Service, headers: dict[str, str], expected: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (got := status(node, headers)) != expected:
        assert time.monotonic() < deadline, f"{node.url}: {got}, not {expected}, after {seconds} s"
        time.sleep(0.2)


def test_two_public_nodes_starting_together_make_one_admin_key(
    tmp_path: Path, model_cache: Path, server_url: str
) -> None:
    def start(name: str) -> Service:
        return Service(
            tmp_path / name,
            model_cache,
            "--host",
            "0.0.0.0",
            "--workers",
            "0",
            database_url=server_url,
            env={"WHISPER_KEY_CACHE_SECONDS": str(CACHE_SECONDS)},
        )

    with ThreadPoolExecutor(2) as pool:  # both at once
        starts = [pool.submit(start, name) for name in ("node-a", "node-b")]
    nodes = [started.result() for started in starts if started.exception() is None]
    alice_key = ""
    try:
        assert len(nodes) == 2, [started.exception() for started in starts]
        logs = [Path(node.log.name).read_text() for node in nodes]
        made = [log for log in logs if "made the admin key" in log]
        assert len(made) == 1, logs  # decided in the database: one node made it, the other did not
        [admin_key] = KEY.findall(made[0])
        for node, log in zip(nodes, logs, strict=True):
            assert f"Uvicorn running on http://0.0.0.0:{node.port}" in log  # listening beyond loopback
            assert status(node, {}) == 401  # and never open
            for headers in ({"Authorization": f"Bearer {admin_key}"}, {"X-API-Key": admin_key}, {"X-Token": admin_key}):
                assert status(node, headers) == 200
            assert status(node, {"X-Token": WRONG}) == 401

        created = keys_command("create", "alice", database_url=server_url)
        assert created.returncode == 0, created.stderr
        alice_key = created.stdout.strip()
        assert KEY.fullmatch(alice_key) and "shown only this once" in created.stderr
        for node in nodes:
            wait_status(node, {"X-API-Key": alice_key}, 200, CACHE_SECONDS + 5)

        listed = keys_command("list", database_url=server_url)
        assert listed.returncode == 0, listed.stderr
        rows = [line.split()[:3] for line in listed.stdout.splitlines()[1:]]
        assert rows == [["admin", "yes", "database"], ["alice", "no", "database"]]
        assert "wsk_" not in listed.stdout

        revoked = keys_command("revoke", "alice", database_url=server_url)
        assert revoked.returncode == 0, revoked.stderr
        for node in nodes:
            wait_status(node, {"X-API-Key": alice_key}, 401, CACHE_SECONDS + 5)
        assert status(nodes[0], {"X-Token": admin_key}) == 200
    finally:
        for node in nodes:
            assert node.stop() == 0
    everything = "\n".join(p.read_text() for p in tmp_path.glob("node-*/serve-*.log"))
    assert everything.count(admin_key) == 1  # printed once, never logged from a request's headers
    assert alice_key and alice_key not in everything and WRONG not in everything
    assert "GET /v1/tasks HTTP/1.1" in everything  # the requests were logged, without their keys
