"""The `whisper-service` command: serve, worker, migrate, transcribe."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import sys
from pathlib import Path

import uvicorn

from app import logs, remote
from app.db.engine import create_engine
from app.db.migrate import is_at_head, schema_head, upgrade_to_head
from app.main import create_app
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


def _loopback_or_any(host: str) -> str:
    """The host as an IP address; names other than localhost count as non-loopback."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return "0.0.0.0"
    return host


def _exit_cleanly(signum: int, _frame: object) -> None:
    raise SystemExit(0)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Migrate, start embedded workers, serve the API until interrupted."""
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = settings.model_copy(update=overrides)
    if not KeyRing.from_settings(settings).enabled:
        if not ipaddress.ip_address(_loopback_or_any(settings.host)).is_loopback:
            log.warning(
                "no API keys configured (WHISPER_API_KEYS): refusing %s, listening on 127.0.0.1 only", settings.host
            )
            settings = settings.model_copy(update={"host": "127.0.0.1"})
        log.warning("no API keys configured: the API is unauthenticated (loopback only)")
    workers = settings.embedded_workers if args.workers is None else args.workers
    asyncio.run(_migrate(settings))
    supervisor = WorkerSupervisor(workers, grace_seconds=settings.shutdown_grace_seconds)
    # uvicorn re-raises the signal that stopped it; exit through Python instead, so the workers are stopped too.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    supervisor.start()
    try:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            # Event streams never end by themselves: give requests this long, then close what is still open
            # (clients reconnect, to this node once it is back or to another one).
            timeout_graceful_shutdown=GRACEFUL_HTTP_SECONDS,
        )
    finally:
        supervisor.stop()
    return 0


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
    tr.add_argument("--language", help="language code; default: detect")
    tr.add_argument("--task", choices=["transcribe", "translate"], default="transcribe")
    tr.add_argument("--formats", default="srt,vtt,txt,json", help="comma-separated: srt,vtt,lrc,txt,tsv,json")
    tr.add_argument("--output-dir", help="where to write (default: next to each file)")
    tr.add_argument("--word-timestamps", action="store_true", help="compute word timings")
    tr.set_defaults(func=cmd_transcribe)
    check = sub.add_parser("check", help="exit 0 when the database is reachable and at the current schema")
    check.add_argument("--model", help="also load this model (a worker's health check)")
    check.set_defaults(func=cmd_check)
    remote.add_parser(sub)
    return parser


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
    code: int = args.func(settings, args)
    return code


if __name__ == "__main__":
    sys.exit(main())
