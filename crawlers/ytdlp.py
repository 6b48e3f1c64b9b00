"""Page links (TikTok, Douyin, YouTube, Bilibili and whatever else yt-dlp knows) to one downloadable media URL.

yt-dlp only extracts here: its requests go through GuardedRH (the outbound policy on every hop), it chooses among
plain http(s) formats only, and the media itself is downloaded by crawlers.direct, which checks and pins every hop.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yt_dlp.networking.exceptions import HTTPError
from yt_dlp.utils import DownloadError

from app.errors import AppError, AudioTooLong, MediaFetchFailed, NoMediaOnPage, StreamOnlyMedia
from crawlers.guarded import Guard, GuardedYoutubeDL

META_FIELDS = ("title", "uploader", "duration", "webpage_url", "thumbnail", "extractor")
PLAIN_PROTOCOLS = ("http", "https")


@dataclass(frozen=True)
class Extracted:
    """The media URL a page leads to, the headers to fetch it with, and what the page said about it."""

    url: str
    headers: dict[str, str]
    meta: dict[str, Any]


def ytdlp_options(*, cookies_file: Path | None) -> dict[str, Any]:
    """Safe yt-dlp settings: no user config, one item of a playlist, no JavaScript runtime or remote code, no
    retries (the fetch has one deadline), our own format choice."""
    return {
        "ignoreconfig": True,
        "format": _plain_format,
        "noplaylist": True,
        "playlist_items": "1",
        "check_formats": False,
        "extractor_retries": 0,
        "retries": 0,
        "socket_timeout": 30,
        "js_runtimes": {},
        "remote_components": [],
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "cookiefile": str(cookies_file) if cookies_file else None,
    }


def _plain_format(ctx: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The best single-file http(s) format, audio-only first; never a fragmented one (HLS, DASH, ...)."""
    plain = [
        f
        for f in ctx["formats"]
        if f.get("protocol") in PLAIN_PROTOCOLS and not f.get("fragments") and f.get("acodec") != "none"
    ]
    audio_only = [f for f in plain if f.get("vcodec") == "none"]
    chosen = (audio_only or plain)[-1:]  # yt-dlp sorts formats worst to best
    yield from chosen


def extract_media(url: str, *, guard: Guard, max_seconds: float, cookies_file: Path | None = None) -> Extracted:
    """The media URL of the page at `url`; our own errors (URLNotAllowed, FetchTimedOut, NoMediaOnPage...) only."""
    try:
        with GuardedYoutubeDL(ytdlp_options(cookies_file=cookies_file), guard=guard) as ydl:
            info = ydl.extract_info(url, download=False)
            if info and info.get("entries"):
                info = next(iter(info["entries"]), None)
            if not info:
                raise NoMediaOnPage()
            cookie = ydl.cookiejar.get_cookie_header(info["url"]) if info.get("url") else ""
    except AppError:
        raise
    except Exception as exc:  # yt-dlp raises its own errors, and extractors anything: none reaches the user as is
        if isinstance(guard.failure, BaseException):
            raise guard.failure from exc
        raise _translated(exc) from exc
    if isinstance(guard.failure, AppError):
        raise guard.failure  # a refused request made the page look different: do not trust what came of it
    if info.get("protocol") not in PLAIN_PROTOCOLS or not info.get("url"):
        raise StreamOnlyMedia()
    duration = info.get("duration")
    if isinstance(duration, int | float) and duration > max_seconds:
        raise AudioTooLong(f"The media lasts {duration:.0f} s; this server accepts at most {max_seconds:.0f} s.")
    headers = {str(k): str(v) for k, v in (info.get("http_headers") or {}).items()}
    if cookie:
        headers["Cookie"] = cookie
    meta = {key: info[key] for key in META_FIELDS if info.get(key) is not None}
    return Extracted(str(info["url"]), headers, meta)


def _translated(exc: Exception) -> AppError:
    """yt-dlp's failure in our words, with its reason when that helps the user (never its bug-report advice)."""
    if not isinstance(exc, DownloadError):
        return NoMediaOnPage()
    cause = exc.exc_info[1] if exc.exc_info else None
    while cause is not None and not isinstance(cause, HTTPError):
        cause = cause.__cause__ or getattr(cause, "cause", None) or getattr(cause, "orig_msg", None)
        if not isinstance(cause, BaseException):
            cause = None
    if isinstance(cause, HTTPError):
        return MediaFetchFailed(f"The page answered HTTP {cause.status}: check the link.")
    if "Requested format is not available" in str(exc.msg):
        return StreamOnlyMedia()
    reason = re.sub(r"^(ERROR: )?(\[[^\]]*\] )?", "", str(exc.msg or "")).split(";")[0].strip()[:200]
    return NoMediaOnPage(f"{NoMediaOnPage().detail} ({reason})" if reason and "yt-dlp" not in reason else None)
