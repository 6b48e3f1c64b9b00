"""`whisper-service keys create|list|revoke` and `webhook-secret`: administration done in the database directly.

Whoever can run these with the cluster's WHISPER_DATABASE_URL is its administrator; no server needs to run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.engine import create_engine, session_factory
from app.errors import AppError
from app.services import api_keys, cluster_settings
from app.services.auth import KeyRing
from app.settings import Settings

T = TypeVar("T")
COMMANDS = ("keys", "webhook-secret")


def _in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(settings.resolved_database_url)
        try:
            async with session_factory(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def cmd_create(settings: Settings, args: argparse.Namespace) -> int:
    """Make a key and print it, once: only its hash is kept."""
    environment_names = KeyRing.from_settings(settings).names
    key, stored = _in_session(
        settings,
        lambda session: api_keys.create_key(
            session=session, name=args.name, admin=args.admin, environment_names=environment_names
        ),
    )
    print(key)
    print(
        f"API key {stored.name!r} created{' (admin: sees every task)' if stored.admin else ''}. It is shown only "
        f"this once; every API node accepts it within {settings.key_cache_seconds:g} s.",
        file=sys.stderr,
    )
    return 0


def cmd_list(settings: Settings, _: argparse.Namespace) -> int:
    """The keys by name, from the database and from this environment; never a key itself."""
    stored = _in_session(settings, lambda session: api_keys.list_keys(session=session))
    print(f"{'name':24}  {'admin':5}  {'source':11}  {'created (UTC)':19}  last used (UTC)")
    for key in stored:
        print(f"{key.name:24}  {'yes' if key.admin else 'no':5}  {'database':11}  {_when(key.created_at):19}  ", end="")
        print(_when(key.last_used_at))
    for name in KeyRing.from_settings(settings).names:
        admin = "yes" if api_keys.is_admin_name(name) else "no"
        print(f"{name:24}  {admin:5}  {'environment':11}  {'-':19}  -")
    return 0


def cmd_revoke(settings: Settings, args: argparse.Namespace) -> int:
    """Delete a key; API nodes refuse it within WHISPER_KEY_CACHE_SECONDS. Its tasks stay."""
    if args.name in KeyRing.from_settings(settings).names:
        print(
            f"whisper-service: {args.name!r} is a key from the environment (WHISPER_API_KEYS or ACCESS_TOKEN): "
            "remove it there, on every API node, and restart them",
            file=sys.stderr,
        )
        return 1
    _in_session(settings, lambda session: api_keys.revoke_key(session=session, name=args.name))
    print(
        f"API key {args.name!r} revoked: every API node refuses it within {settings.key_cache_seconds:g} s.",
        file=sys.stderr,
    )
    return 0


def cmd_webhook_secret(settings: Settings, _: argparse.Namespace) -> int:
    """The secret callbacks are signed with (unless a task has its own), for receivers to verify them."""
    if settings.webhook_secret is not None:
        print(settings.webhook_secret.get_secret_value())
        print("(from WHISPER_WEBHOOK_SECRET, which signs callbacks instead of the cluster's secret)", file=sys.stderr)
        return 0
    print(_in_session(settings, lambda session: cluster_settings.webhook_secret(session=session)))
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`keys` with its subcommands, and `webhook-secret`."""
    keys = sub.add_parser("keys", help="create, list or revoke API keys kept in the database")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key and print it (once)")
    create.add_argument("name", help="the key's name: its tenant, which owns the tasks it creates")
    create.add_argument("--admin", action="store_true", help="the key sees every tenant's tasks")
    create.set_defaults(func=cmd_create)
    actions.add_parser("list", help="names, admin flag, created, last used").set_defaults(func=cmd_list)
    revoke = actions.add_parser("revoke", help="delete a key (its tasks stay)")
    revoke.add_argument("name")
    revoke.set_defaults(func=cmd_revoke)
    secret = sub.add_parser("webhook-secret", help="print the secret that signs callbacks")
    secret.set_defaults(func=cmd_webhook_secret)


def run(func: Callable[[Settings, argparse.Namespace], int], settings: Settings, args: argparse.Namespace) -> int:
    """Run one of these commands; an error becomes one line and exit code 1."""
    try:
        return func(settings, args)
    except AppError as exc:
        print(f"whisper-service: {exc.detail}", file=sys.stderr)
        return 1
