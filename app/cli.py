"""The `whisper-service` command: serve, worker, migrate, transcribe, check, tasks, keys, webhook-secret."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

import uvicorn

from app import admin, logs, remote, startup
from app.db.engine import create_engine, session_factory
from app.db.migrate import is_at_head, schema_head, upgrade_to_head
from app.errors import StartupCheckFailed
from app.languages import language_code
from app.main import create_app
from app.services import api_keys
from app.services.auth import KeyRing
from app.settings import Settings, describe_error, get_settings
from app.supervisor import WorkerSupervisor

GRACEFUL_HTTP_SECONDS = 5

log = logging.getLogger("whisper_service")


async def _migrate(settings: Settings) -> None:
    engine = create_engine(settings.resolved_database_url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    """Bring the schema to the newest revision."""
    asyncio.run(_migrate(settings))
    print("database schema is at head", file=sys.stderr)
    return 0


def _exit_cleanly(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Migrate, start embedded workers, serve the API until interrupted."""
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = settings.model_copy(update=overrides)
    workers = settings.embedded_workers if args.workers is None else args.workers
    asyncio.run(_migrate(settings))
    asyncio.run(_prepare_keys(settings))
    supervisor = WorkerSupervisor(workers, grace_seconds=settings.shutdown_grace_seconds)
    # uvicorn re-raises the signal that stopped it; exit through Python instead, so the workers are stopped too.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    supervisor.start()
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        # uvicorn's own handlers would print plain text among our JSON lines: its loggers go to ours instead.
        log_config=None,
        # Event streams never end by themselves: give requests this long, then close what is still open
        # (clients reconnect, to this node once it is back or to another one).
        timeout_graceful_shutdown=GRACEFUL_HTTP_SECONDS,
    )
    server = _Server(config, supervisor)
    try:
        server.run()
    finally:
        supervisor.stop()
    return 0 if server.started else 3  # uvicorn's code for a failed start-up


async def _prepare_keys(settings: Settings) -> None:
    """Say how requests are authenticated. Listening beyond loopback, with no key in the environment and a database
    that never held one, make the first admin key (once per database, whichever node starts first) and log it, as
    Jupyter and Grafana do."""
    environment = KeyRing.from_settings(settings)
    engine = create_engine(settings.resolved_database_url)
    try:
        async with session_factory(engine)() as session:
            wanted = not environment.enabled and settings.listens_beyond_loopback
            if wanted and (key := await api_keys.create_first_admin_key(session=session)) is not None:
                log.warning(
                    "listening on %s with no API key anywhere: made the admin key %r, shown only this once:\n"
                    "\n    %s\n\nSend it in an Authorization header (Bearer), X-API-Key or X-Token; make more "
                    "with `whisper-service keys create NAME`.",
                    settings.host,
                    api_keys.FIRST_ADMIN_NAME,
                    key,
                )
                return
            stored = await api_keys.load_keys(session=session)
    finally:
        await engine.dispose()
    names = {key.name for key in stored.keys.values()}
    for name in sorted(set(environment.names) & names):
        log.warning("the API key name %r is in the environment and in the database: both keys act as %r", name, name)
    if environment.enabled or stored.keys:
        log.info("API keys: %d from the environment, %d in the database", len(environment.keys), len(names))
    elif stored.in_use or settings.listens_beyond_loopback:
        log.warning(
            "no API key exists (the database's were revoked): every request is refused with 401 until one is made "
            "with `whisper-service keys create NAME --admin`"
        )
    else:
        log.warning("no API keys: the API is unauthenticated (it listens on %s only)", settings.host)


class _Server(uvicorn.Server):
    """uvicorn that signals the embedded workers as soon as it is told to stop, so their grace period (and the
    release of their tasks) runs while HTTP requests drain, not after."""

    def __init__(self, config: uvicorn.Config, supervisor: WorkerSupervisor) -> None:
        super().__init__(config)
        self.supervisor = supervisor

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.supervisor.signal_stop()
        super().handle_exit(sig, frame)


def cmd_worker(settings: Settings, _: argparse.Namespace) -> int:
    """Run a worker in this process."""
    from workers.main import run_worker  # worker-only: loads the model pool

    asyncio.run(run_worker(settings))
    return 0


def cmd_transcribe(settings: Settings, args: argparse.Namespace) -> int:
    """Transcribe local files with the same engine, writing subtitles next to them."""
    from workers.local import transcribe_files  # worker-only: loads the model pool

    return transcribe_files(
        settings,
        [Path(p) for p in args.files],
        model=args.model or settings.default_model,
        language=args.language,
        task_type=args.task,
        formats=args.formats.split(","),
        output_dir=Path(args.output_dir) if args.output_dir else None,
        word_timestamps=args.word_timestamps,
    )


async def _check(settings: Settings) -> str | None:
    """Why this node is not ready, or None."""
    engine = create_engine(settings.resolved_database_url)
    try:
        async with asyncio.timeout(10):
            if not await is_at_head(engine):
                return f"the database schema is not at {schema_head()}: run `whisper-service migrate`"
    except Exception as exc:
        return f"the database is unreachable: {type(exc).__name__}: {exc}"
    finally:
        await engine.dispose()
    return None


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    """Readiness for scripts and container health checks: database, schema and (with --model) the model."""
    problem = asyncio.run(_check(settings))
    if problem is None and args.model:
        from workers.main import build_engine  # worker-only: loads the model pool

        try:
            build_engine(settings.model_copy(update={"preload_models": [args.model]}))
        except Exception as exc:
            problem = f"the model {args.model} does not load: {type(exc).__name__}: {exc}"
    if problem:
        print(f"not ready: {problem}", file=sys.stderr)
        return 1
    print("ready", file=sys.stderr)
    return 0


def _language(value: str) -> str | None:
    try:
        return language_code(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    """The argument parser."""
    parser = argparse.ArgumentParser(prog="whisper-service", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API (and embedded workers)")
    serve.add_argument("--host", help="listen address (WHISPER_HOST)")
    serve.add_argument("--port", type=int, help="listen port (WHISPER_PORT)")
    serve.add_argument("--workers", type=int, help="embedded worker processes; 0 for an API-only node")
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("worker", help="run a worker").set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="bring the database schema to head").set_defaults(func=cmd_migrate)
    tr = sub.add_parser("transcribe", help="transcribe local files")
    tr.add_argument("files", nargs="+", help="audio or video files")
    tr.add_argument("--model", help="model name (default WHISPER_DEFAULT_MODEL)")
    tr.add_argument("--language", type=_language, help="language code or English name; default: detect")
    tr.add_argument("--task", choices=["transcribe", "translate"], default="transcribe")
    tr.add_argument("--formats", default="srt,vtt,txt,json", help="comma-separated: srt,vtt,lrc,txt,tsv,json")
    tr.add_argument("--output-dir", help="where to write (default: next to each file)")
    tr.add_argument("--word-timestamps", action="store_true", help="compute word timings")
    tr.set_defaults(func=cmd_transcribe)
    check = sub.add_parser("check", help="exit 0 when the database is reachable and at the current schema")
    check.add_argument("--model", help="also load this model (a worker's health check)")
    check.set_defaults(func=cmd_check)
    remote.add_parser(sub)
    admin.add_parsers(sub)
    return parser


def preflight(settings: Settings, args: argparse.Namespace) -> None:
    """Start-up checks for the command about to run; raises StartupCheckFailed naming the variable."""
    command = args.command
    embedded = settings.embedded_workers if getattr(args, "workers", None) is None else args.workers
    if command in ("serve", "worker"):
        startup.check_models(settings)
    if command in ("worker", "transcribe") or (command == "serve" and embedded > 0):
        startup.check_device(settings)
    if command in ("serve", "worker", "migrate", *admin.COMMANDS):
        asyncio.run(startup.check_database(settings, at_head=command in ("worker", *admin.COMMANDS)))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    if args.command == "tasks":  # a client of a running server: needs no server settings
        return remote.run(args)
    try:
        settings = get_settings()
    except Exception as exc:
        print(f"whisper-service: {describe_error(exc)}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if args.command in admin.COMMANDS:  # their output is a key, a table or a secret: no schema-check lines around it
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        preflight(settings, args)
    except StartupCheckFailed as exc:
        print(f"whisper-service: {exc}", file=sys.stderr)
        return 2
    if args.command in admin.COMMANDS:
        return admin.run(args.func, settings, args)
    code: int = args.func(settings, args)
    return code


if __name__ == "__main__":
    sys.exit(main())
