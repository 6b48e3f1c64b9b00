"""Embedded worker processes for `serve`: started beside the API, restarted if they die, stopped with it."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

log = logging.getLogger(__name__)
RESTART_DELAY_SECONDS = 2.0
KILL_AFTER_GRACE_SECONDS = 5.0
"""How long past the grace period a stopping worker may take to give its tasks back before it is killed."""
SUPERVISOR_VARIABLE = "WHISPER_SUPERVISOR_PID"
"""Set for embedded workers: the `serve` process whose death makes them stop (workers.main)."""


class WorkerSupervisor:
    """Keeps `count` `python -m workers` processes alive until stopped."""

    def __init__(self, count: int, *, grace_seconds: float) -> None:
        self.count = count
        self.grace_seconds = grace_seconds
        self._procs: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._signalled_at = 0.0
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        """Start the workers and the watcher thread."""
        self._procs = [self._spawn() for _ in range(self.count)]
        self._thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, SUPERVISOR_VARIABLE: str(os.getpid())}  # the worker stops if this process dies
        proc = subprocess.Popen([sys.executable, "-m", "workers"], env=env)
        log.info("started embedded worker pid %d", proc.pid)
        return proc

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            for i, proc in enumerate(self._procs):
                if proc.poll() is not None and not self._stopping.is_set():
                    log.error("embedded worker pid %d exited with %s; restarting", proc.pid, proc.returncode)
                    if self._stopping.wait(RESTART_DELAY_SECONDS):
                        return  # told to stop meanwhile: start nothing the stop would miss
                    self._procs[i] = self._spawn()

    def signal_stop(self) -> None:
        """SIGTERM every worker (once), without waiting: they finish or give their tasks back meanwhile."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._signalled_at = time.monotonic()
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """Signal the workers if not done yet, wait until the grace period (+ KILL_AFTER_GRACE_SECONDS) since the
        signal, then kill what is left."""
        self.signal_stop()
        deadline = self._signalled_at + self.grace_seconds + KILL_AFTER_GRACE_SECONDS
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
