"""`whisper-service tasks list|show|cancel`: a small client for a running server (any node's URL)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"


class ClientError(Exception):
    """What to tell the user when a call fails."""


def _client(args: argparse.Namespace) -> httpx.Client:
    key = args.key or os.environ.get("WHISPER_API_KEY", "")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=args.url or os.environ.get("WHISPER_URL", DEFAULT_URL), headers=headers, timeout=30)


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise ClientError(f"cannot reach {client.base_url}: {exc}") from exc
    if response.is_error:
        try:
            detail = response.json().get("detail") or response.text
        except ValueError:
            detail = response.text
        raise ClientError(f"{response.status_code}: {detail}")
    return response


def cmd_list(args: argparse.Namespace) -> int:
    """One line per task, newest first."""
    params = {"limit": args.limit, **({"status": args.status} if args.status else {})}
    with _client(args) as client:
        page = _call(client, "GET", "/v1/tasks", params=params).json()
    print(f"{'id':36}  {'status':9}  {'prog':>4}  {'priority':8}  {'created':19}  name")
    for task in page["items"]:
        name = task.get("filename") or task.get("source_url") or ""
        created = str(task["created_at"])[:19].replace("T", " ")
        print(f"{task['id']:36}  {task['status']:9}  {task['progress']:>3}%  {task['priority']:8}  {created}  {name}")
    print(f"{len(page['items'])} of {page['total']} tasks", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """The task as JSON, or its transcript in a subtitle format."""
    with _client(args) as client:
        if args.format:
            print(_call(client, "GET", f"/v1/tasks/{args.id}/subtitles", params={"format": args.format}).text, end="")
        else:
            print(json.dumps(_call(client, "GET", f"/v1/tasks/{args.id}").json(), indent=2, ensure_ascii=False))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    """Cancel a queued or running task."""
    with _client(args) as client:
        task = _call(client, "POST", f"/v1/tasks/{args.id}/cancel").json()
    print(f"{task['id']}: {task['status']}")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`tasks` and its subcommands."""
    tasks = sub.add_parser("tasks", help="list, show or cancel tasks on a running server")
    tasks.add_argument("--url", help=f"server URL (WHISPER_URL, default {DEFAULT_URL})")
    tasks.add_argument("--key", help="API key (WHISPER_API_KEY)")
    actions = tasks.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="newest tasks first")
    listing.add_argument("--status", choices=["queued", "running", "completed", "failed", "cancelled"])
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(remote=cmd_list)
    show = actions.add_parser("show", help="one task as JSON, or its transcript with --format")
    show.add_argument("id")
    show.add_argument("--format", choices=["srt", "vtt", "lrc", "txt", "tsv", "json"])
    show.set_defaults(remote=cmd_show)
    cancel = actions.add_parser("cancel", help="cancel a task")
    cancel.add_argument("id")
    cancel.set_defaults(remote=cmd_cancel)


def run(args: argparse.Namespace) -> int:
    """Run a `tasks` subcommand; errors become one line and exit code 1."""
    try:
        code: int = args.remote(args)
    except ClientError as exc:
        print(f"whisper-service: {exc}", file=sys.stderr)
        return 1
    return code
