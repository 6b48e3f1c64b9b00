"""Chaos soak: exactly-once while everything fails at once.

    python -m bench.chaos --db mariadb               # 5,000 tasks, about 10 minutes, two database server restarts
    python -m bench.chaos --db postgresql --short    # 300 tasks, about 2 minutes, no server restart (in make test)
    python -m bench.chaos --db mariadb --real        # the bundled model on the shared clips, a few dozen tasks

A fleet on a fresh database of the chosen server: API nodes (`whisper-service serve --workers 0`) and worker processes
(`tests.worker_process`: the real Worker; its engine logs every execution in an `executions` table that has no unique
constraint, then takes a per-task random 0.1-2 s, or decodes with the real model). Submitters create tasks through
the API as a client would (Idempotency-Key, retrying errors with the same key, on the next node), each with a
callback_url to a local receiver that verifies signatures, and cancel some. For the whole run, random faults: SIGKILL
and SIGSTOP/SIGCONT of workers, SIGKILL and restart of API nodes, every database connection killed, and (default run)
full database server restarts. At the end it prints the figures and checks them; the exit code is 1 if a check failed.

Must run as a user who may stop and start this machine's database servers (root here) when restarts are asked for.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
import wave
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks.webhooks import Webhook

from app.db.engine import create_engine
from app.db.models import Task, TaskResult
from bench.databases import drop_database, fresh_database, kill_other_connections, restart_server
from tests.service import SCRIPT, free_port
from tests.worker_process import executions, metadata

SECRET = "whsec_" + "Y2hhb3Mtc29hay1zZWNyZXQtb2YtMzItYnl0ZXMhIQ=="
TERMINAL = ("completed", "failed", "cancelled")
LEASE_SECONDS = 8.0
FLEET_ENV = {
    "WHISPER_LEASE_SECONDS": str(LEASE_SECONDS),
    "WHISPER_HEARTBEAT_SECONDS": "2",
    "WHISPER_REAP_SECONDS": "1",
    "WHISPER_POLL_SECONDS": "0.1",
    "WHISPER_SHUTDOWN_GRACE_SECONDS": "5",
    "WHISPER_WEBHOOK_SECRET": SECRET,
    "WHISPER_WEBHOOK_RETRY_SCHEDULE": "0.5,1,2,4,8",
    "WHISPER_ALLOWED_HOSTS": "127.0.0.1",
    "WHISPER_LOG_LEVEL": "WARNING",
    "WHISPER_HOST": "127.0.0.1",
}
AUDIO_DIR = Path(__file__).resolve().parents[2] / "shared" / "audio"


@dataclass
class Config:
    """One soak's shape."""

    db: str = "mariadb"
    tasks: int = 5000
    rate: float = 9.0  # tasks per second the submitters create, all together
    api_nodes: int = 2
    workers: int = 4
    concurrency: int = 3
    submitters: int = 6
    db_restarts: int = 2
    fault_every: tuple[float, float] = (3.0, 8.0)
    cancel_share: float = 0.05
    real: bool = False
    seed: int = 15
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="chaos-")))


# --- the callback receiver ------------------------------------------------------------------------------------------


class Receiver:
    """Records every delivery (verified with the secret); answers 503 to one in twenty, so retries happen."""

    def __init__(self, seed: int) -> None:
        self.bodies: dict[str, set[str]] = defaultdict(set)  # event id -> sha256 of each distinct body
        self.events: dict[str, set[tuple[str, str]]] = defaultdict(set)  # task id -> {(event id, type)}
        self.deliveries = 0
        self.refused = 0
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self.random = random.Random(seed)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.record(body, {k.lower(): v for k, v in self.headers.items()})
                with receiver.lock:
                    refuse = receiver.random.random() < 0.05
                    receiver.refused += refuse
                self.send_response(503 if refuse else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def record(self, body: bytes, headers: dict[str, str]) -> None:
        try:
            event = Webhook(SECRET).verify(body, headers)
        except Exception:
            with self.lock:
                self.bad_signatures += 1
            return
        with self.lock:
            self.deliveries += 1
            self.bodies[headers["webhook-id"]].add(hashlib.sha256(body).hexdigest())
            self.events[event["data"]["task_id"]].add((headers["webhook-id"], event["type"]))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- the fleet ------------------------------------------------------------------------------------------------------


class Proc:
    """A fleet process that can be killed, frozen and started again in the same role."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log
        self.proc: asyncio.subprocess.Process | None = None
        self.worker_id = ""
        self.frozen = False

    async def start(self) -> None:
        worker = "tests.worker_process" in self.argv  # prints its id first: read it, nothing else comes
        with self.log_path.open("a") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdout=asyncio.subprocess.PIPE if worker else log, stderr=log
            )
        if worker:
            assert self.proc.stdout is not None
            line = (await asyncio.wait_for(self.proc.stdout.readline(), 120)).decode()
            self.worker_id = line.split(" ", 1)[1].strip() if line.startswith("worker-id ") else ""

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)

    async def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            await self.proc.wait()
        self.frozen = False

    async def stop(self) -> None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        if self.proc is not None:
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                await self.kill()


class Fleet:
    """The API nodes and workers of one soak, and the database they share."""

    def __init__(self, config: Config, url: str) -> None:
        self.config, self.url = config, url
        self.db: AsyncEngine = create_engine(url, pool_size=4)
        self.nodes: list[Proc] = []
        self.ports: list[int] = []
        self.workers: list[Proc] = []
        env = {**os.environ, **FLEET_ENV, "WHISPER_DATABASE_URL": url}
        models = config.folder / "models"
        for i in range(config.api_nodes):
            port = free_port()
            self.ports.append(port)
            node_env = {**env, "WHISPER_PORT": str(port), "WHISPER_DATA_DIR": str(config.folder / f"api-{i}")}
            node_env["WHISPER_MODEL_CACHE_DIR"] = str(models)
            argv = [*SCRIPT.split(), "serve", "--workers", "0"]
            self.nodes.append(Proc(f"api-{i}", argv, node_env, config.folder / f"api-{i}.log"))
        for i in range(config.workers):
            worker_env = {
                **env,
                "WHISPER_DATA_DIR": str(config.folder / f"worker-{i}"),
                "WHISPER_MODEL_CACHE_DIR": str(models),
                "WHISPER_WORKER_NAME": f"node-{'ab'[i % 2]}",
                "WHISPER_WORKER_CONCURRENCY": str(config.concurrency),
                "WHISPER_TEST_DELAY": "0.1-2",
                "WHISPER_TEST_REAL": "1" if config.real else "0",
            }
            argv = [sys.executable, "-m", "tests.worker_process"]
            self.workers.append(Proc(f"worker-{i}", argv, worker_env, config.folder / f"worker-{i}.log"))

    @property
    def bases(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    async def start(self) -> None:
        async with self.db.begin() as conn:
            await conn.run_sync(metadata.create_all)
        await self.nodes[0].start()  # the first start migrates; the others find the schema at head
        await wait_ready(self.bases[0])
        await asyncio.gather(*(node.start() for node in self.nodes[1:]))
        await asyncio.gather(*(wait_ready(base) for base in self.bases))
        await asyncio.gather(*(worker.start() for worker in self.workers))

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in [*self.workers, *self.nodes]))
        await self.db.dispose()

    async def query(self, statement: Any) -> list[Any]:
        """Rows of a read, retried through outages (the soak's own connections are killed too)."""
        while True:
            try:
                async with self.db.connect() as conn:
                    return list((await conn.execute(statement)).all())
            except Exception:
                await asyncio.sleep(0.5)


async def wait_ready(base: str, *, timeout: float = 180) -> float:
    """Seconds until `base` answers /ready with 200."""
    start = time.monotonic()
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() - start < timeout:
            try:
                if (await http.get(f"{base}/ready")).status_code == 200:
                    return time.monotonic() - start
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{base} not ready within {timeout} s")


# --- clients --------------------------------------------------------------------------------------------------------


@dataclass
class Clients:
    """What the submitters saw."""

    acked: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> task id
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    server_errors: list[str] = field(default_factory=list)  # 5xx other than 503
    client_errors: list[str] = field(default_factory=list)  # unexpected 4xx
    unavailable: list[float] = field(default_factory=list)  # when each 503 came (monotonic)
    cancels: int = 0
    expected: dict[str, str] = field(default_factory=dict)  # task id -> reference text (real model)


def tone_wav() -> bytes:
    """0.3 s of a tone as WAV."""
    t = np.arange(4800) / 16_000
    samples = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(samples.tobytes())
    return out.getvalue()


def real_clips() -> list[tuple[str, bytes, str]]:
    """(name, bytes, reference text) of the shared English clips of at most 30 s (MANIFEST.tsv)."""
    clips = []
    for line in (AUDIO_DIR / "MANIFEST.tsv").read_text().splitlines()[1:]:
        name, language, seconds, _speakers, _source, reference = line.split("\t")[:6]
        if language == "en" and float(seconds) <= 30 and reference.endswith(".txt"):
            text = (AUDIO_DIR / reference).read_text().strip()
            clips.append((name, (AUDIO_DIR / name).read_bytes(), text))
    return clips


async def request(
    clients: Clients,
    bases: list[str],
    send: Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]],
    accept: set[int],
) -> httpx.Response:
    """Send until a node answers with an accepted status, as a client would: errors and 5xx retried on the next node."""
    async with httpx.AsyncClient(timeout=30) as http:
        for attempt in range(10_000):
            base = bases[attempt % len(bases)]
            try:
                response = await send(http, base)
            except httpx.HTTPError:
                clients.transport_errors += 1
            else:
                clients.statuses[response.status_code] += 1
                if response.status_code in accept:
                    return response
                if response.status_code == 503:
                    clients.unavailable.append(time.monotonic())
                elif response.status_code >= 500:
                    clients.server_errors.append(f"{response.status_code} {response.text[:200]}")
                else:
                    clients.client_errors.append(f"{response.status_code} {response.text[:200]}")
                    return response
            await asyncio.sleep(random.uniform(0.2, 1.0))
    raise RuntimeError("a request never succeeded")


async def submit(config: Config, fleet: Fleet, receiver: Receiver, clients: Clients) -> None:
    """Create config.tasks tasks at config.rate per second, cancelling a share of them."""
    rng = random.Random(config.seed)
    media = real_clips() if config.real else [("tone.wav", tone_wav(), "")]
    interval = config.submitters / config.rate
    numbers = iter(range(config.tasks))

    async def submitter() -> None:
        for n in numbers:
            started = time.monotonic()
            key = str(uuid.uuid4())
            name, body, reference = media[n % len(media)]
            priority = rng.choices(["high", "normal", "low"], weights=[1, 7, 2])[0]
            fields = {"callback_url": receiver.url, "dedupe": "false", "priority": priority}

            headers = {"Idempotency-Key": key}
            upload = {"files": {"file": (name, body)}, "data": fields, "headers": headers}

            def create(http: httpx.AsyncClient, base: str, upload: dict[str, Any] = upload) -> Awaitable[Any]:
                return http.post(f"{base}/v1/tasks", **upload)

            response = await request(clients, fleet.bases, create, {200, 201})
            if response.status_code in (200, 201):
                task_id = response.json()["id"]
                clients.acked[key] = task_id
                clients.expected[task_id] = reference
            if clients.acked and rng.random() < config.cancel_share:
                victim = rng.choice(list(clients.acked.values())[-20:])  # a recent one: likely still queued

                def cancel(http: httpx.AsyncClient, base: str, victim: str = victim) -> Awaitable[Any]:
                    return http.post(f"{base}/v1/tasks/{victim}/cancel")

                await request(clients, fleet.bases, cancel, {200, 409})
                clients.cancels += 1
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    await asyncio.gather(*(submitter() for _ in range(config.submitters)))


# --- faults ---------------------------------------------------------------------------------------------------------


@dataclass
class Faults:
    """Each fault and how long the fleet took to get over it."""

    recoveries: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    beyond_lease: list[float] = field(default_factory=list)  # seconds a task waited past its lease after a fault
    outages: list[tuple[float, float]] = field(default_factory=list)  # database down (monotonic start, end)
    connections_killed: int = 0
    observers: list[asyncio.Task[None]] = field(default_factory=list)


async def held_by(fleet: Fleet, worker_id: str) -> dict[str, datetime]:
    """The running tasks a worker holds, with their lease expiry."""
    rows = await fleet.query(
        select(Task.id, Task.lease_expires_at).where(Task.status == "running", Task.lease_owner == worker_id)
    )
    return {task_id: expires for task_id, expires in rows}


async def watch_release(fleet: Fleet, faults: Faults, kind: str, worker_id: str, held: dict[str, datetime]) -> None:
    """Recovery from a worker fault: until each of its tasks has ended or runs elsewhere. For a killed worker, also
    how long past its lease each task stayed with the dead worker before the fleet gave it back to the queue."""
    start = time.monotonic()
    pending, unreleased = dict(held), set(held)
    while pending:
        rows = await fleet.query(select(Task.id, Task.status, Task.lease_owner).where(Task.id.in_(list(pending))))
        now = datetime.now(UTC)
        for task_id, status, owner in rows:
            if task_id in unreleased and (status != "running" or owner != worker_id):
                unreleased.discard(task_id)
                if kind == "worker_kill" and status not in TERMINAL:
                    faults.beyond_lease.append(max(0.0, (now - pending[task_id]).total_seconds()))
            if status in TERMINAL or (status == "running" and owner != worker_id):
                del pending[task_id]
        for task_id in set(pending) - {row[0] for row in rows}:
            del pending[task_id]  # deleted meanwhile
        await asyncio.sleep(0.2)
    faults.recoveries[kind].append(time.monotonic() - start)


async def next_completion(fleet: Fleet) -> None:
    """Wait until one more task has ended than now (or none is left to end)."""
    ended = select(func.count()).select_from(Task).where(Task.status.in_(TERMINAL))
    left = select(func.count()).select_from(Task).where(Task.status.not_in(TERMINAL))
    before = (await fleet.query(ended))[0][0]
    while True:
        if (await fleet.query(ended))[0][0] > before or (await fleet.query(left))[0][0] == 0:
            return
        await asyncio.sleep(0.2)


async def inject(config: Config, fleet: Fleet, faults: Faults, rng: random.Random, kind: str) -> None:
    """One fault now; an observer measures the recovery."""
    start = time.monotonic()
    if kind in ("worker_kill", "worker_freeze"):
        worker = rng.choice([w for w in fleet.workers if not w.frozen])
        held = await held_by(fleet, worker.worker_id)
        if kind == "worker_kill":
            await worker.kill()
            faults.observers.append(asyncio.create_task(watch_release(fleet, faults, kind, worker.worker_id, held)))
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            await worker.start()  # a new process: a new worker id
        else:
            worker.signal(signal.SIGSTOP)
            worker.frozen = True
            faults.observers.append(asyncio.create_task(watch_release(fleet, faults, kind, worker.worker_id, held)))
            asyncio.get_running_loop().call_later(rng.uniform(1.0, LEASE_SECONDS + 4), thaw, worker)
    elif kind == "api_kill":
        node = rng.choice(fleet.nodes)
        base = fleet.bases[fleet.nodes.index(node)]
        await node.kill()
        await node.start()
        faults.recoveries[kind].append(await wait_ready(base) + time.monotonic() - start)
    elif kind == "connections_killed":
        database = make_url(fleet.url).database or ""
        admin = create_engine(fleet.url)
        try:
            async with admin.connect() as conn:
                faults.connections_killed += await kill_other_connections(conn, database)
        finally:
            await admin.dispose()
        await next_completion(fleet)
        faults.recoveries[kind].append(time.monotonic() - start)
    elif kind == "db_restart":
        await restart_server(config.db, down_seconds=rng.uniform(3, 6))
        back = time.monotonic()
        faults.outages.append((start, back))
        await next_completion(fleet)
        await asyncio.gather(*(wait_ready(base) for base in fleet.bases))
        faults.recoveries[kind].append(time.monotonic() - back)


def thaw(worker: Proc) -> None:
    worker.signal(signal.SIGCONT)
    worker.frozen = False


async def chaos(
    config: Config, fleet: Fleet, faults: Faults, submitted: asyncio.Task[None], drained: asyncio.Event
) -> None:
    """Random faults until every task has ended; database restarts spread over the submission."""
    rng = random.Random(config.seed + 1)
    kinds = ["worker_kill", "worker_freeze", "api_kill", "connections_killed"]
    restarts_due = [config.tasks * (i + 1) / (config.db_restarts + 1) for i in range(config.db_restarts)]
    while not drained.is_set():
        await asyncio.sleep(rng.uniform(*config.fault_every))
        if drained.is_set():
            break
        created = (await fleet.query(select(func.count()).select_from(Task)))[0][0]
        if restarts_due and created >= restarts_due[0] and not submitted.done():
            restarts_due.pop(0)
            await inject(config, fleet, faults, rng, "db_restart")
        else:
            await inject(config, fleet, faults, rng, rng.choices(kinds, weights=[3, 3, 2, 3])[0])
    for worker in fleet.workers:
        if worker.frozen:
            thaw(worker)


# --- the run and its checks -----------------------------------------------------------------------------------------


async def drain(fleet: Fleet, expected: int, *, timeout: float) -> bool:
    """Until the database holds `expected` tasks, all ended; False on timeout."""
    deadline = time.monotonic() + timeout
    ended = select(func.count()).select_from(Task).where(Task.status.in_(TERMINAL))
    while time.monotonic() < deadline:
        if (await fleet.query(ended))[0][0] >= expected:
            return True
        await asyncio.sleep(0.5)
    return False


async def delivered(fleet: Fleet, receiver: Receiver, *, timeout: float) -> None:
    """Until every ended task's own event has arrived (or the timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = await fleet.query(select(Task.id, Task.status).where(Task.status.in_(TERMINAL)))
        with receiver.lock:
            missing = [t for t, s in rows if f"task.{s}" not in {kind for _, kind in receiver.events.get(t, ())}]
        if not missing:
            return
        await asyncio.sleep(0.5)


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = re.findall(r"[\w']+", reference.lower()), re.findall(r"[\w']+", hypothesis.lower())
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[-1] / max(1, len(ref))


async def report(
    config: Config, fleet: Fleet, receiver: Receiver, clients: Clients, faults: Faults, elapsed: float, drained: bool
) -> bool:
    """Print the figures and the checks; True when every check holds."""
    tasks = {row[0]: row for row in await fleet.query(select(Task.id, Task.status, Task.error_type))}
    statuses = Counter(row[1] for row in tasks.values())
    results = await fleet.query(select(TaskResult.task_id, TaskResult.text))
    runs = await fleet.query(
        select(executions.c.task_id, executions.c.execution_id, executions.c.worker_id, executions.c.at).order_by(
            executions.c.at
        )
    )
    by_task: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for task_id, execution_id, worker_id, _ in runs:
        by_task[task_id].append((execution_id, worker_id))

    acked = set(clients.acked.values())
    lost = acked - set(tasks)
    unacked = set(tasks) - acked
    stuck = [t for t, row in tasks.items() if row[1] not in TERMINAL]
    result_count = Counter(task_id for task_id, _ in results)
    written_twice = [t for t, n in result_count.items() if n > 1]
    fenced: list[str] = []
    wrong_text: list[str] = []
    for task_id, text in results:
        if config.real:
            if word_error_rate(clients.expected.get(task_id, ""), text) > 0.35:
                wrong_text.append(task_id)
            continue
        match = re.fullmatch(r"done by (\S+) in (\S+)", text)
        last = by_task[task_id][-1] if by_task[task_id] else None
        if match is None or last is None or (match.group(2), match.group(1)) != last:
            fenced.append(task_id)  # written by an execution that a later claim had fenced out
    with receiver.lock:
        conflicting = [event for event, bodies in receiver.bodies.items() if len(bodies) > 1]
        missing_events, doubled_events = [], []
        for task_id, row in tasks.items():
            if row[1] not in TERMINAL:
                continue
            own = {event for event, kind in receiver.events.get(task_id, ()) if kind == f"task.{row[1]}"}
            if not own:
                missing_events.append(task_id)
            elif len(own) > 1:
                doubled_events.append(task_id)
    reruns = Counter(len(v) for v in by_task.values())

    def figures(values: list[float]) -> str:
        if not values:
            return "-"
        return f"n={len(values)}, median {statistics.median(values):.1f} s, max {max(values):.1f} s"

    print(
        f"\n== chaos soak on {config.db} ({'real model' if config.real else 'fake engine'}): "
        f"{len(tasks)} tasks in {elapsed:.0f} s, {config.api_nodes} API nodes, {config.workers} workers x "
        f"{config.concurrency}"
    )
    print(
        f"tasks: {dict(statuses)}; failed by error: {dict(Counter(r[2] for r in tasks.values() if r[1] == 'failed'))}"
    )
    print(f"executions per task: {dict(sorted(reruns.items()))}")
    print(
        f"clients: {sum(clients.statuses.values())} answers {dict(sorted(clients.statuses.items()))}, "
        f"{clients.transport_errors} transport errors (killed nodes), {clients.cancels} cancels"
    )
    in_outage = sum(any(a <= t <= b + 10 for a, b in faults.outages) for t in clients.unavailable)
    print(
        f"503 answers: {len(clients.unavailable)} ({in_outage} during a database restart, the others while database "
        "connections were being killed)"
    )
    print(
        f"webhooks: {receiver.deliveries} deliveries ({receiver.refused} refused by the receiver and redelivered), "
        f"{len(receiver.bodies)} event ids, {receiver.bad_signatures} bad signatures"
    )
    print(
        f"faults: {', '.join(f'{k} {len(v)}' for k, v in sorted(faults.recoveries.items()))}; "
        f"{faults.connections_killed} connections killed"
    )
    for kind, values in sorted(faults.recoveries.items()):
        print(f"  recovery after {kind}: {figures(values)}")
    print(
        f"  longest a killed worker's task stayed held past its lease: "
        f"{max(faults.beyond_lease, default=0.0):.1f} s (lease {LEASE_SECONDS:.0f} s, reaper every 1 s)"
    )
    checks = {
        "every task ended (0 stuck)": drained and not stuck,
        "created = completed + failed + cancelled": len(tasks) == sum(statuses[s] for s in TERMINAL),
        "0 lost (every acknowledged task exists)": not lost,
        "0 duplicates (every task was acknowledged once)": not unacked and len(acked) == len(clients.acked),
        "0 results written twice": not written_twice,
        "every ended task's event received": not missing_events,
        "one event per task outcome": not doubled_events,
        "0 conflicting payloads for one event id": not conflicting,
        "0 bad signatures": receiver.bad_signatures == 0,
        "0 HTTP 5xx other than 503": not clients.server_errors,
        "0 unexpected 4xx": not clients.client_errors,
    }
    if config.real:  # the transcript is the model's: it cannot name its execution
        checks["every real transcript within WER 0.35 of its reference"] = not wrong_text
    else:
        checks["0 results written by a fenced-out execution"] = not fenced
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAILED'}] {name}")
    problems = {
        "lost": lost,
        "unacked": unacked,
        "stuck": stuck,
        "twice": written_twice,
        "fenced": fenced,
        "missing events": missing_events,
        "doubled events": doubled_events,
        "conflicting": conflicting,
        "5xx": clients.server_errors,
        "4xx": clients.client_errors,
        "wrong text": wrong_text,
    }
    for name, items in problems.items():
        if items:
            print(f"  {name}: {len(items)}, e.g. {json.dumps(sorted(items)[:5])}")
    return all(checks.values())


async def run(config: Config) -> bool:
    """One soak; True when every check held."""
    url = await fresh_database(config.db)
    receiver = Receiver(config.seed)
    fleet = Fleet(config, url)
    clients, faults = Clients(), Faults()
    print(f"chaos: {config.db}, {config.tasks} tasks, logs in {config.folder}", flush=True)
    try:
        await fleet.start()
        started = time.monotonic()
        drained_event = asyncio.Event()
        submitted = asyncio.create_task(submit(config, fleet, receiver, clients))
        monkey = asyncio.create_task(chaos(config, fleet, faults, submitted, drained_event))
        await submitted
        drained = await drain(fleet, len(set(clients.acked.values())), timeout=300 + config.tasks / 5)
        drained_event.set()
        await monkey
        await asyncio.wait_for(asyncio.gather(*faults.observers, return_exceptions=True), 120)
        await delivered(fleet, receiver, timeout=120)
        return await report(config, fleet, receiver, clients, faults, time.monotonic() - started, drained)
    finally:
        await fleet.stop()
        receiver.close()
        await drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["mariadb", "postgresql"], default="mariadb")
    parser.add_argument("--short", action="store_true", help="300 tasks, about 2 minutes, no server restart")
    parser.add_argument(
        "--real", action="store_true", help="the bundled model on the shared English clips (40 tasks unless --tasks)"
    )
    parser.add_argument("--tasks", type=int)
    parser.add_argument("--db-restarts", type=int)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    config = Config(db=args.db, seed=args.seed)
    if args.short:
        config.tasks, config.rate, config.db_restarts, config.concurrency = 300, 4.0, 0, 2
        config.fault_every = (2.0, 5.0)
    if args.real:
        config.real = True
        config.tasks, config.rate, config.db_restarts, config.concurrency = 40, 0.5, 1, 1
        config.workers, config.fault_every = 2, (5.0, 10.0)
    config.tasks = args.tasks or config.tasks
    config.db_restarts = args.db_restarts if args.db_restarts is not None else config.db_restarts
    sys.exit(0 if asyncio.run(run(config)) else 1)


if __name__ == "__main__":
    main()
