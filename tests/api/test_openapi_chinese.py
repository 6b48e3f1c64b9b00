"""The OpenAPI schema in English and Chinese: every summary and description has its translation in ZH (app/api/i18n)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from app.api.i18n import SUMMARY_SEPARATOR, catalogue_key, texts, untranslated
from app.api.i18n.zh import ZH
from app.api.openapi import english_schema
from app.main import create_app
from app.settings import Settings

CJK = re.compile(r"[\u4e00-\u9fff]")
# What a translation keeps exactly as the English has it: code spans, setting names, status codes.
KEPT = re.compile(r"`[^`]+`|\bWHISPER_[A-Z_]+\b|\b[1-5]\d\d\b")


@pytest.fixture(scope="module")
def app_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    folder = tmp_path_factory.mktemp("openapi")
    return Settings(data_dir=folder, database_url=f"sqlite+aiosqlite:///{folder / 'docs.db'}")


@pytest.fixture(scope="module")
def english(app_settings: Settings) -> dict[str, Any]:
    return english_schema(create_app(app_settings))


def test_every_text_has_a_chinese_translation(english: dict[str, Any]) -> None:
    missing = untranslated(english)
    lines = "\n".join(f'    {json.dumps(text, ensure_ascii=False)}: "",  # {where}' for text, where in missing.items())
    assert not missing, (
        f"{len(missing)} OpenAPI text(s) have no Chinese translation. Add these lines to ZH in app/api/i18n/zh.py, "
        f"with the Chinese between the empty quotes (the comment says where the text is used):\n{lines}"
    )


def test_every_translation_is_used(english: dict[str, Any]) -> None:
    used = {catalogue_key(owner[key]) for _, owner, key in texts(english)}
    stale = [text for text in ZH if text not in used]
    assert not stale, "These English texts are no longer in the schema; remove (or re-key) their lines in ZH: " + (
        json.dumps(stale, ensure_ascii=False, indent=1)
    )


def test_each_translation_is_chinese_and_keeps_the_code() -> None:
    faults = []
    for english_text, chinese in ZH.items():
        lost = set(KEPT.findall(english_text)) - set(KEPT.findall(chinese))
        if not CJK.search(chinese) or lost:
            faults.append(f"{english_text!r}: {chinese!r} (not Chinese, or lost {sorted(lost)})")
    assert not faults, "\n".join(faults)


async def test_the_served_schema_is_bilingual(app_settings: Settings) -> None:
    app = create_app(app_settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        spec = (await http.get("/openapi.json")).json()
    create = spec["paths"]["/v1/tasks"]["post"]
    assert create["summary"] == f"Create a task{SUMMARY_SEPARATOR}创建任务"
    assert create["description"].startswith("Queue audio or video for transcription.")
    assert "\n\n将音频或视频加入转写队列。" in create["description"]
    language = spec["paths"]["/v1/tasks"]["get"]["parameters"][3]
    assert language["name"] == "language"
    assert language["description"] == "Language code (requested or detected).\n\n语言代码（请求指定的或检测到的）。"
    start = spec["components"]["schemas"]["Segment"]["properties"]["start"]
    assert start["description"] == "Start time in seconds.\n\n开始时间（秒）。"
    tags = {tag["name"]: tag["description"] for tag in spec["tags"]}
    assert tags["tasks"] == "Transcription tasks: create, follow, export.\n\n转写任务：创建、跟踪、导出。"
    # Every text of the served schema, in both languages; the schema a second app builds is not translated twice.
    served = [owner[key] for _, owner, key in texts(spec)]
    assert served and all(CJK.search(text) for text in served), [t for t in served if not CJK.search(t)]
    again = create_app(app_settings).openapi()
    assert again["paths"]["/v1/tasks"]["post"]["summary"] == create["summary"]
    assert untranslated(english_schema(create_app(app_settings))) == {}
