"""Platform recognition on real-world link and share-text shapes."""

from __future__ import annotations

import pytest

from app.services.platforms import detect_platform, find_url


@pytest.mark.parametrize(
    ("url", "platform"),
    [
        ("https://www.tiktok.com/@scout2015/video/6718335390845095173", "tiktok"),
        ("https://vm.tiktok.com/ZMeAbCdEf/", "tiktok"),
        ("https://vt.tiktok.com/ZSJxYz123/", "tiktok"),
        ("https://m.tiktok.com/v/6718335390845095173.html", "tiktok"),
        ("https://www.douyin.com/video/7198362512345678901", "douyin"),
        ("https://v.douyin.com/iRNBho5m/", "douyin"),
        ("https://www.iesdouyin.com/share/video/7198362512345678901/", "douyin"),
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "youtube"),
        ("https://youtu.be/dQw4w9WgXcQ?si=abc", "youtube"),
        ("https://www.youtube.com/shorts/abcdefghijk", "youtube"),
        ("https://www.bilibili.com/video/BV1GJ411x7h7", "bilibili"),
        ("https://b23.tv/AbCdEfG", "bilibili"),
        ("https://example.com/talk.mp3", None),
        ("https://nottiktok.com/video/1", None),
        ("https://tiktok.com.evil.example/video/1", None),
    ],
)
def test_detect_platform(url: str, platform: str | None) -> None:
    assert detect_platform(url) == platform


@pytest.mark.parametrize(
    ("text", "url"),
    [
        (
            "7.43 复制打开抖音，看看【城市夜景的作品】今晚的月亮 # 夜景 "
            "https://v.douyin.com/iRNBho5m/ 复制此链接，打开Dou音搜索，直接观看视频！",
            "https://v.douyin.com/iRNBho5m/",
        ),
        ("Check out this video! https://vm.tiktok.com/ZMeAbCdEf/ #fyp", "https://vm.tiktok.com/ZMeAbCdEf/"),
        ("【标题】https://b23.tv/AbCdEfG】", "https://b23.tv/AbCdEfG"),
        (
            "https://www.tiktok.com/@user/video/1234567890123456789?is_from_webapp=1.",
            "https://www.tiktok.com/@user/video/1234567890123456789?is_from_webapp=1",
        ),
        ("no link here", None),
    ],
)
def test_find_url_in_share_text(text: str, url: str | None) -> None:
    assert find_url(text) == url
