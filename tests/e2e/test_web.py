"""The web page in a real browser (Debian's chromium driven by Playwright) against `whisper-service serve`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.audio import clip, reference, wer
from tests.fake_llm import FakeLLM
from tests.service import Service

pytestmark = pytest.mark.model
CHROMIUM = "/usr/bin/chromium"
KEY = "web-test-key-0123"
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
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Save key").click()


def test_upload_watch_read_download_and_seek(browser: Browser, web: Service, shots: Path) -> None:
    page = browser.new_page(accept_downloads=True)
    sign_in(page, web)
    expect(page.locator("#live")).to_have_text("Live")

    page.set_input_files("#file", clip(CLIP))
    page.get_by_label("Word timestamps").check()
    page.screenshot(path=shots / "1-upload.png", full_page=True)
    page.get_by_role("button", name="Transcribe").click()
    item = page.locator("#task-list li").first
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

    with page.expect_download() as download:
        page.get_by_role("button", name="SRT").click()
    assert download.value.suggested_filename == CLIP.replace(".wav", ".srt")
    cues = parse_srt(Path(download.value.path()).read_text(encoding="utf-8"))
    assert len(cues) == segments.count() and wer(reference(CLIP), " ".join(c[2] for c in cues)) <= 0.25

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

    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    sign_in(phone, web)
    phone.locator("#task-list li").first.get_by_role("button", name="Open").click()
    expect(phone.locator("#segments li").first).to_be_visible()
    phone.screenshot(path=shots / "4-phone.png", full_page=True)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"


def test_the_api_errors_reach_the_user(browser: Browser, web_without_llm: Service, shots: Path, tmp_path: Path) -> None:
    web = web_without_llm
    page = browser.new_page()
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
    expect(page.locator("#task-list li")).to_have_count(0)
    page.set_input_files("#file", clip("librivox_0880.wav"))  # 3 s
    page.get_by_role("button", name="Transcribe").click()
    item = page.locator("#task-list li").first
    expect(item.locator(".badge")).to_have_text("completed", timeout=120_000)
    item.get_by_role("button", name="Open").click()
    expect(page.locator("#segments li").first).to_be_visible()
    expect(page.get_by_role("button", name="Summarize")).to_be_hidden()  # no LLM configured

    # Filters and delete.
    page.get_by_label("Show").select_option("failed")
    expect(page.locator("#task-list li")).to_have_count(0)
    page.get_by_label("Show").select_option("completed")
    expect(page.locator("#task-list li")).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#task-list li").first.get_by_role("button", name="Delete").click()
    expect(page.locator("#task-list li")).to_have_count(0)
    expect(page.locator("#transcript")).to_be_hidden()
