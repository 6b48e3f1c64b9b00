"""POST /v1/tasks/tiktok and /v1/tasks/douyin: share links and share texts."""

from __future__ import annotations

import httpx
import pytest

DOUYIN_SHARE = (
    "7.43 复制打开抖音，看看【城市夜景的作品】今晚的月亮 # 夜景 https://v.douyin.com/iRNBho5m/ "
    "复制此链接，打开Dou音搜索，直接观看视频！"
)


async def test_douyin_share_text_creates_a_platform_task(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/tasks/douyin", json={"text": DOUYIN_SHARE, "priority": "high", "language": "zh"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["source"], body["platform"], body["source_url"]) == (
        "platform",
        "douyin",
        "https://v.douyin.com/iRNBho5m/",
    )
    assert (body["priority"], body["language"], body["status"]) == ("high", "zh", "queued")
    listed = (await client.get(f"/v1/tasks/{body['id']}")).json()
    assert listed["platform"] == "douyin"


async def test_tiktok_link_as_form_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/tasks/tiktok", data={"url": "https://vm.tiktok.com/ZMeAbCdEf/"})
    assert response.status_code == 201, response.text
    assert response.json()["platform"] == "tiktok"


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/v1/tasks/tiktok", {"url": "https://v.douyin.com/iRNBho5m/"}, "is not a tiktok link"),
        ("/v1/tasks/douyin", {"text": "no link in here"}, "No http(s) link"),
        ("/v1/tasks/douyin", {}, "Give `url`"),
        ("/v1/tasks/douyin", {"text": DOUYIN_SHARE, "beam_size": 0}, "beam_size"),
    ],
)
async def test_bad_platform_requests(
    client: httpx.AsyncClient, path: str, body: dict[str, object], needle: str
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == 422 and needle in response.json()["detail"], response.text
    assert (await client.get("/v1/tasks")).json()["total"] == 0


async def test_explicit_platform_on_the_generic_route(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/tasks", json={"file_url": "https://www.bilibili.com/video/BV1GJ411x7h7"})
    assert response.status_code == 201 and response.json()["platform"] == "bilibili"
    plain = await client.post("/v1/tasks", json={"file_url": "https://example.com/a.mp3"})
    assert plain.json()["source"] == "url" and plain.json()["platform"] is None
