"""Embedded worker processes for `serve`: started beside the API, restarted if they die, stopped with it."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time

log = logging.getLogger(__name__)
RESTART_DELAY_SECONDS = 2.0


class WorkerSupervisor:
    """Keeps `count` `python -m workers` processes alive until stopped."""

    def __init__(self, count: int, *, grace_seconds: float) -> None:
        self.count = count
        self.grace_seconds = grace_seconds
        self._procs: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        """Start the workers and the watcher thread."""
        self._procs = [self._spawn() for _ in range(self.count)]
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "workers"])
        log.info("started embedded worker pid %d", proc.pid)
        return proc

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            for i, proc in enumerate(self._procs):
                if proc.poll() is not None and not self._stopping.is_set():
                    log.error("embedded worker pid %d exited with %s; restarting", proc.pid, proc.returncode)
                    time.sleep(RESTART_DELAY_SECONDS)
                    self._procs[i] = self._spawn()

    def stop(self) -> None:
        """SIGTERM every worker, wait for the grace period (+5 s), then kill what is left."""
        self._stopping.set()
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds + 5
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
