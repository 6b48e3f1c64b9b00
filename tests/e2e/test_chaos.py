"""The short chaos soak (bench/chaos.py --short) on each database server: 300 tasks through 2 API nodes and 4 worker
processes while workers are killed and frozen, API nodes killed and restarted and database connections killed;
every check it makes (0 lost, 0 stuck, 0 written twice or by a fenced-out run, every webhook event received with one
payload, no 5xx but 503) must hold. The long run with database server restarts is `python -m bench.chaos`."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.timeout(900)
@pytest.mark.parametrize("server", ["mariadb", "postgresql"])
def test_the_short_chaos_soak_holds_every_check(server: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--short", "--db", server],
        capture_output=True,
        text=True,
        timeout=850,
    )
    print(run.stdout[-6000:])
    assert run.returncode == 0, f"{run.stdout[-6000:]}\n{run.stderr[-4000:]}"
    assert "[FAILED]" not in run.stdout and run.stdout.count("[ok]") >= 12
