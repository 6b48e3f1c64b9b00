"""The web page in a real browser (Debian's chromium driven by Playwright) against `whisper-service serve`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.audio import clip, reference, wer
from tests.fake_llm import FakeLLM
from tests.service import Service

pytestmark = pytest.mark.model
CHROMIUM = "/usr/bin/chromium"
KEY = "web-test-key-0123"
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
CLIP = "en_asterisk_demo-congrats.wav"  # 30 s, several segments
# Chromium as root, headless, with its background services off (this machine's network refuses them).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: apt-get install -y chromium (.ci/run does)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def web(tmp_path: Path, model_cache: Path, llm: str) -> Iterator[Service]:
    """The service with an API key and a (fake, loopback) LLM for summaries."""
    env = {"WHISPER_API_KEYS": f"web:{KEY}", "WHISPER_LLM_BASE_URL": llm, "WHISPER_LLM_API_KEY": "sk-fake-key-000"}
    running = Service(tmp_path / "service", model_cache, env=env)
    yield running
    running.stop()


@pytest.fixture
def web_without_llm(tmp_path: Path, model_cache: Path) -> Iterator[Service]:
    running = Service(tmp_path / "plain", model_cache, env={"WHISPER_API_KEYS": f"web:{KEY}"})
    yield running
    running.stop()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("WHISPER_SCREENSHOTS", tmp_path / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {folder}")
    return folder


def parse_srt(text: str) -> list[tuple[str, str, str]]:
    """(start, end, text) of each cue; fails on anything that is not well-formed SRT."""
    cues = []
    for number, block in enumerate(text.strip().split("\n\n"), start=1):
        lines = block.split("\n")
        assert lines[0] == str(number), block
        match = re.fullmatch(r"(\d\d:\d\d:\d\d,\d\d\d) --> (\d\d:\d\d:\d\d,\d\d\d)", lines[1])
        assert match and match[1] <= match[2], block
        cues.append((match[1], match[2], " ".join(lines[2:])))
    return cues


def sign_in(page: Page, service: Service, key: str = KEY) -> None:
    page.goto(service.url)
    page.locator("#api-key").fill(key)
    page.locator("#key-form button").click()


def test_upload_watch_read_download_and_seek(browser: Browser, web: Service, shots: Path) -> None:
    page = browser.new_page(accept_downloads=True, locale="en-US")
    sign_in(page, web)
    expect(page.locator("#live")).to_have_text("Live")

    page.set_input_files("#file", clip(CLIP))
    page.get_by_label("Word timestamps").check()
    page.screenshot(path=shots / "1-upload.png", full_page=True)
    page.get_by_role("button", name="Transcribe").click()
    item = page.locator("#task-list > li").first
    expect(item.locator(".name")).to_have_text(CLIP)
    page.screenshot(path=shots / "2-progress.png", full_page=True)
    expect(item.locator("progress")).to_have_js_property("value", 100, timeout=120_000)
    expect(item.locator(".badge")).to_have_text("completed")

    item.get_by_role("button", name="Open").click()
    segments = page.locator("#segments li")
    expect(segments.first).to_be_visible()
    text = " ".join(segments.locator(".text").all_inner_texts())
    assert wer(reference(CLIP), text) <= 0.25, text
    page.screenshot(path=shots / "3-transcript.png", full_page=True)

    page.get_by_label("Format").select_option("srt")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename == CLIP.replace(".wav", ".srt")
    cues = parse_srt(Path(download.value.path()).read_text(encoding="utf-8"))
    # Standard cues (at most 2 lines of 42 characters and 7 s), so at least one per segment.
    assert len(cues) >= segments.count() and wer(reference(CLIP), " ".join(c[2] for c in cues)) <= 0.25

    # Clicking a segment seeks the player there, and that segment is highlighted.
    target = segments.nth(segments.count() - 1)
    start = float(target.locator("button").get_attribute("data-start") or "nan")
    assert start > 1
    target.locator("button").click()
    position = page.evaluate("document.querySelector('#player').currentTime")
    assert position >= start - 0.05, (position, start)
    expect(target).to_have_class(re.compile("current"))

    word = reference(CLIP).split()[3].strip(",.").lower()
    page.get_by_label("Search").fill(word)
    expect(page.locator("#search-count")).to_contain_text("matching segment")
    expect(page.locator("#segments mark").first).to_have_text(re.compile(word, re.I))

    page.get_by_role("button", name="Summarize").click()
    expect(page.locator("#summary")).to_have_text("summary#1")
    assert FakeLLM.requests and "successfully installed" in str(FakeLLM.requests[0]["body"])

    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, locale="en-US")
    sign_in(phone, web)
    phone.locator("#task-list > li").first.get_by_role("button", name="Open").click()
    expect(phone.locator("#segments li").first).to_be_visible()
    phone.screenshot(path=shots / "4-phone.png", full_page=True)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"


def test_the_api_errors_reach_the_user(browser: Browser, web_without_llm: Service, shots: Path, tmp_path: Path) -> None:
    web = web_without_llm
    page = browser.new_page(locale="en-US")
    sign_in(page, web, key="not-the-key")
    expect(page.locator("#list-error")).to_contain_text("Enter a valid API key")

    sign_in(page, web)
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not audio\n" * 50)
    page.set_input_files("#file", notes)
    page.get_by_role("button", name="Transcribe").click()
    error = page.locator("#create-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("not audio or video")
    page.screenshot(path=shots / "5-error.png", full_page=True)
    expect(page.locator("#task-list > li")).to_have_count(0)
    expect(page.locator("#no-tasks")).to_be_visible()
    page.set_input_files("#file", clip("librivox_0880.wav"))  # 3 s
    page.get_by_role("button", name="Transcribe").click()
    item = page.locator("#task-list > li").first
    expect(item.locator(".badge")).to_have_text("completed", timeout=120_000)
    expect(page.locator("#no-tasks")).to_be_hidden()
    item.get_by_role("button", name="Open").click()
    expect(page.locator("#segments li").first).to_be_visible()
    expect(page.get_by_role("button", name="Summarize")).to_be_hidden()  # no LLM configured

    # Filters and delete.
    page.get_by_label("Show").select_option("failed")
    expect(page.locator("#task-list > li")).to_have_count(0)
    page.get_by_label("Show").select_option("completed")
    expect(page.locator("#task-list > li")).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#task-list > li").first.get_by_role("button", name="Delete").click()
    expect(page.locator("#task-list > li")).to_have_count(0)
    expect(page.locator("#transcript")).to_be_hidden()


def test_the_page_and_docs_render_offline_under_the_csp(browser: Browser, tmp_path: Path, model_cache: Path) -> None:
    """The page, Swagger UI and ReDoc render from this server's own assets; the browser reports no CSP violation."""
    api = Service(tmp_path / "docs", model_cache, "--workers", "0")
    try:
        page = browser.new_page(locale="en-US")
        problems: list[str] = []
        # Errors other than a missing /favicon.ico (the page declares none; the browser asks anyway).
        page.on(
            "console",
            lambda m: (
                problems.append(m.text)
                if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico")
                else None
            ),
        )
        page.on("pageerror", lambda e: problems.append(str(e)))
        failed: list[str] = []
        # (The page's event stream is aborted when it navigates away: only outside requests count here.)
        page.on("requestfailed", lambda r: failed.append(r.url) if not r.url.startswith(api.url) else None)
        outside: list[str] = []
        page.on(
            "request", lambda r: outside.append(r.url) if not r.url.startswith((api.url, "data:", "blob:")) else None
        )
        page.goto(api.url)  # the web page itself, under the same policy
        expect(page.get_by_role("heading", name="New transcription")).to_be_visible()
        page.goto(f"{api.url}/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("whisper-service")
        expect(page.locator(".opblock-summary-path").first).to_be_visible()
        page.goto(f"{api.url}/redoc")
        expect(page.locator("h1").first).to_contain_text("whisper-service", timeout=20_000)  # ReDoc renders slowly
        expect(page.get_by_text("Create a task · 创建任务").first).to_be_attached()
        # ReDoc's bundle hard-codes one outside image (its footer's Redocly logo, hidden when it fails to load): the
        # CSP blocks it, so nothing is fetched from elsewhere; any other error or outside request fails the test.
        assert set(outside) <= set(failed) <= {REDOCLY_LOGO}, (outside, failed)
        assert [p for p in problems if REDOCLY_LOGO not in p] == []
    finally:
        api.stop()


ZH_CLIP = "zh_aishell_W0121.wav"  # 4 s of Mandarin
# The choices the page remembers, as the user sets them: element id -> value.
CHOICES = {"model": "base", "language": "zh", "priority": "high", "chinese-script": "traditional"}


def test_chinese_page_remembers_choices_pages_the_list_and_opens_transcripts_in_place(
    browser: Browser, web_without_llm: Service, shots: Path
) -> None:
    web = web_without_llm
    context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
    page = context.new_page()
    sign_in(page, web)

    # Simplified Chinese from the browser's zh-CN, every language with every string.
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    expect(page.get_by_role("heading", name="新建转写")).to_be_visible()
    expect(page.locator("#submit")).to_have_text("开始转写")
    expect(page.locator("#live")).to_have_text("实时更新中")
    languages = page.evaluate(
        """async () => {
            const m = await import("/web/i18n.js");
            const keys = Object.keys(m.STRINGS.en).sort().join();
            const detected = ["zh-CN", "zh-SG", "zh-Hans-HK", "zh", "zh-TW", "zh-HK", "zh-Hant", "en-GB", "fr"]
              .map((tag) => m.detectLanguage([tag]));
            return {complete: Object.values(m.STRINGS).every((s) => Object.keys(s).sort().join() === keys),
                    detected, fallback: m.detectLanguage(["fr", "zh-TW"])};
        }"""
    )
    assert languages["complete"], "a language of app/web/i18n.js lacks a key the English has"
    assert languages["detected"] == ["zh-Hans"] * 4 + ["zh-Hant"] * 3 + ["en", "en"]
    assert languages["fallback"] == "zh-Hant"  # the first language the page has, in the browser's order

    # The user's choices survive a reload (the model list arrives later than the page) and reach the task.
    expect(page.locator("#model option[value=base]")).to_have_text("base（默认）")
    for element, value in CHOICES.items():
        if element == "language":
            page.locator("#language").fill(value)
        else:
            page.locator(f"#{element}").select_option(value)
    page.locator("#word-timestamps").check()
    page.reload()
    expect(page.locator("#model option[value=base]")).to_be_attached()
    for element, value in CHOICES.items():
        expect(page.locator(f"#{element}")).to_have_value(value)
    expect(page.locator("#word-timestamps")).to_be_checked()
    page.set_input_files("#file", clip(ZH_CLIP))
    page.locator("#submit").click()
    first = page.locator("#task-list > li").first
    expect(first.locator(".badge")).to_have_text("已完成", timeout=120_000)
    expect(page.locator("#model")).to_have_value("base")  # still chosen for the next task
    with httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {KEY}"}) as http:
        task = http.get("/v1/tasks").json()["items"][0]
        detail = http.get(f"/v1/tasks/{task['id']}").json()
        assert (detail["model"], detail["language"], detail["priority"]) == ("base", "zh", "high"), detail
        assert detail["options"]["chinese_script"] == "traditional" and detail["options"]["word_timestamps"]
        # More tasks than a page holds: the same sound and options, so each is completed at once from the first.
        audio = clip(ZH_CLIP).read_bytes()
        form = {"model": "base", "language": "zh", "chinese_script": "traditional", "word_timestamps": "true"}
        for number in range(24):
            name = f"meeting-{number}.wav" if number < 23 else "a-very-long-recording-name-" + "x" * 150 + ".wav"
            created = http.post("/v1/tasks", files={"file": (name, audio, "audio/wav")}, data=form)
            assert created.status_code == 201 and created.json()["status"] == "completed", created.text

    # The list shows a page, and "more" the rest; the long name wraps on a phone.
    page.reload()
    items = page.locator("#task-list > li")
    expect(items).to_have_count(20)
    expect(items.first.locator(".name")).to_contain_text("a-very-long-recording-name-")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"
    assert (items.first.locator(".name").bounding_box() or {"width": 1e9})["width"] <= 390
    page.screenshot(path=shots / "6-chinese-list.png", full_page=True)
    page.get_by_role("button", name="加载更多").click()
    expect(items).to_have_count(25)
    expect(page.get_by_role("button", name="加载更多")).to_be_hidden()

    # The oldest task, at the bottom of the list: its transcript opens right there, in view.
    last = items.last
    last.get_by_role("button", name="打开").click()
    transcript = last.locator("#transcript")
    expect(transcript).to_be_visible()
    expect(transcript.get_by_role("heading", name="转写结果")).to_be_in_viewport()
    expect(transcript.locator("#segments li").first).to_be_in_viewport()
    assert re.search(r"[\u4e00-\u9fff]", transcript.locator("#segments").inner_text())
    page.screenshot(path=shots / "7-chinese-transcript.png")
    transcript.locator("#format").select_option("vtt")

    # The switch: Traditional, then English; the choice outlasts a reload and the browser's own language.
    page.locator("#page-language").select_option("zh-Hant")
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hant")
    expect(page.get_by_role("heading", name="新增轉寫")).to_be_visible()
    expect(transcript.get_by_role("heading", name="轉寫結果")).to_be_visible()
    expect(last.locator(".badge")).to_have_text("已完成")
    expect(page.locator("#chinese-script option[value=traditional]")).to_have_text("繁體")
    # The server's default (none here) sends nothing; "as the model writes" sends `none`.
    expect(page.locator('#chinese-script option[value=""]')).to_have_text("伺服器預設（不轉換）")
    expect(page.locator("#chinese-script option[value=none]")).to_have_text("不轉換（保持模型輸出）")
    named = page.evaluate(
        """async () => (await import("/web/i18n.js")).translate(
            "zh-Hans", "script.defaultIs", {script: {key: "script.traditional"}})"""
    )
    assert named == "服务器默认（繁体）"
    page.locator("#page-language").select_option("en")
    expect(page.get_by_role("heading", name="New transcription")).to_be_visible()
    expect(last.get_by_role("button", name="Close")).to_be_visible()
    expect(last.locator(".badge")).to_have_text("completed")
    page.reload()
    expect(page.get_by_role("heading", name="New transcription")).to_be_visible()
    expect(page.locator("#chinese-script")).to_have_value("traditional")
    expect(page.locator("#format")).to_have_value("vtt")

    # A Taiwanese or Hong Kong browser gets Traditional Chinese on its first visit.
    taiwan = browser.new_page(locale="zh-TW")
    taiwan.goto(web.url)
    expect(taiwan.get_by_role("heading", name="新增轉寫")).to_be_visible()
    expect(taiwan.locator("#page-language")).to_have_value("zh-Hant")
    context.close()
