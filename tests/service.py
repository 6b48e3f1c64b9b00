"""`whisper-service serve` in its own process, for tests that need the real thing (real HTTP, real model)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SCRIPT = shutil.which("whisper-service") or f"{sys.executable} -m app.cli"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """A running `whisper-service` process and its base URL."""

    def __init__(
        self,
        tmp_path: Path,
        model_cache: Path,
        *args: str,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "WHISPER_DATA_DIR": str(tmp_path),
            "WHISPER_MODEL_CACHE_DIR": str(model_cache),
            "WHISPER_PORT": str(self.port),
            "WHISPER_POLL_SECONDS": "0.1",
            "WHISPER_SHUTDOWN_GRACE_SECONDS": "5",
            **({"WHISPER_DATABASE_URL": database_url} if database_url else {}),
            **(env or {}),
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
        self.proc.kill()  # not left running behind the failed test
        self.proc.wait()
        self.log.close()
        raise AssertionError("the service did not come up within 60 s")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.log.close()
        return code
