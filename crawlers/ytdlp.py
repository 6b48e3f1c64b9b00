"""Page links (TikTok, Douyin, YouTube, Bilibili and whatever else yt-dlp knows) to a local audio file."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yt_dlp
from yt_dlp.utils import DownloadError, match_filter_func

from app.errors import AppError, AudioTooLong, MediaFetchFailed

META_FIELDS = ("title", "uploader", "duration", "webpage_url", "thumbnail", "extractor")


@dataclass(frozen=True)
class Fetched:
    """A downloaded media file and what the page said about it."""

    path: Path
    meta: dict[str, Any]


def media_urls(info: dict[str, Any]) -> list[str]:
    """The URLs yt-dlp chose to download from: the format's own, or each merged format's (and their manifests)."""
    formats = info.get("requested_formats") or [info]
    urls = [f.get(key) for f in formats for key in ("url", "manifest_url")]
    return [u for u in dict.fromkeys(urls) if isinstance(u, str)]


def ytdlp_options(directory: Path, *, max_bytes: int, max_seconds: float, cookies_file: Path | None) -> dict[str, Any]:
    """Safe yt-dlp settings: no user config, no playlists, no post-processing or exec, size and duration caps."""
    return {
        "ignoreconfig": True,
        "format": "bestaudio/best",
        "outtmpl": str(directory / "media.%(ext)s"),
        "noplaylist": True,
        "playlist_items": "1",
        "max_filesize": max_bytes,
        "match_filter": match_filter_func(f"duration <=? {int(max_seconds)}"),
        "socket_timeout": 30,
        "retries": 2,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "postprocessors": [],
        "cookiefile": str(cookies_file) if cookies_file else None,
        "restrictfilenames": True,
    }


def fetch_page(
    url: str,
    *,
    max_bytes: int,
    max_seconds: float,
    check_url: Callable[[str], object],
    cookies_file: Path | None = None,
) -> Fetched:
    """Download the best audio a page offers; raise MediaFetchFailed / AudioTooLong with yt-dlp's reason.

    The media URLs yt-dlp finds on the page pass `check_url` (the outbound policy) before anything is downloaded.
    """
    directory = Path(tempfile.mkdtemp(prefix="ytdlp-"))
    options = ytdlp_options(directory, max_bytes=max_bytes, max_seconds=max_seconds, cookies_file=cookies_file)
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            found = ydl.extract_info(url, download=False)
            if found is None:
                raise MediaFetchFailed("The page has no media yt-dlp can fetch.")
            for media_url in media_urls(found):
                check_url(media_url)
            info = ydl.process_ie_result(found, download=True)
    except DownloadError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise MediaFetchFailed(f"The page could not be fetched: {exc.msg or exc}") from exc
    except AppError:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    downloads = info.get("requested_downloads") or []
    files = [Path(d["filepath"]) for d in downloads if d.get("filepath") and Path(d["filepath"]).exists()]
    if not files:
        shutil.rmtree(directory, ignore_errors=True)
        duration = info.get("duration")
        if duration and duration > max_seconds:
            raise AudioTooLong(f"The media lasts {duration:.0f} s; this server accepts at most {max_seconds:.0f} s.")
        raise MediaFetchFailed("yt-dlp downloaded nothing (over the size limit, or no audio format).")
    return Fetched(files[0], {key: info[key] for key in META_FIELDS if info.get(key) is not None})
