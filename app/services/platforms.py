"""Recognising video platforms and pulling the link out of a share text."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

PLATFORM_HOSTS = {
    "tiktok": ("tiktok.com",),
    "douyin": ("douyin.com", "iesdouyin.com"),
    "youtube": ("youtube.com", "youtu.be", "youtube-nocookie.com"),
    "bilibili": ("bilibili.com", "b23.tv"),
}
PLATFORMS = tuple(PLATFORM_HOSTS)
# Share texts end a link at whitespace, CJK punctuation or quotes ("... https://v.douyin.com/iRNBho5m/ 复制此链接").
_URL = re.compile(r"https?://[^\s<>\"'，。！？、【】（）]+", re.IGNORECASE)


def detect_platform(url: str) -> str | None:
    """The platform a URL belongs to (by host and its parent domains), or None."""
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    for platform, domains in PLATFORM_HOSTS.items():
        if any(host == domain or host.endswith("." + domain) for domain in domains):
            return platform
    return None


def find_url(text: str) -> str | None:
    """The first http(s) link in a share text (or the text itself when it is a link)."""
    match = _URL.search(text)
    return match.group(0).rstrip(".,;:!?)]}") if match else None
