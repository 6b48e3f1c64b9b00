"""Uploads and extractions leave no open descriptor and no temporary file behind, whatever their outcome."""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from app.api import intake
from app.api.extract import TemporaryFileResponse
from app.services.media import DecodedMedia
from app.settings import Settings
from tests.conftest import app_client, wait_for
from tests.media_files import NOT_MEDIA, tone_wav


def open_descriptors(database: str) -> dict[int, str]:
    """This process's open file descriptors and what each points at, but for database connections (a pool may
    open another one at any time: that is no leak)."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except FileNotFoundError:
            continue  # the descriptor listdir itself used
        if not target.startswith((database, "socket:")):
            found[int(name)] = target
    return found


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh directory that every tempfile call of the process uses during the test."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


async def test_uploads_and_extractions_leave_no_descriptor_or_file(
    make_settings: Callable[..., Settings], temp_dir: Path
) -> None:
    wav = tone_wav()
    three_seconds = tone_wav(3.0)
    bad: list[tuple[str, bytes, int]] = [
        ("notes.txt", b"plain words, not sound\n" * 40, 415),
        (*NOT_MEDIA["png"][:1], NOT_MEDIA["png"][1](), 415),
        ("cut.wav", three_seconds[: len(three_seconds) // 3], 422),
        ("empty.wav", b"", 400),
        ("huge.wav", b"\0" * 70_000, 413),
    ]
    bad_extract = [case for case in bad if case[0] != "cut.wav"]  # extraction keeps what a cut file holds
    settings = make_settings(max_upload_bytes=64 * 1024)
    # SQLite's file and its -wal, -shm (MariaDB's connections are sockets).
    database = make_url(settings.resolved_database_url).database or "socket:"
    async with app_client(settings) as http:

        async def upload(i: int) -> None:
            if i % 2:
                name, data, status = bad[i // 2 % len(bad)]
            else:
                name, data, status = "tone.wav", tone_wav(frequency=200 + i), 201
            if i % 4 < 2:  # raw bodies as well as multipart ones
                response = await http.post("/v1/tasks", content=data, headers={"Content-Type": "audio/wav"})
            else:
                response = await http.post("/v1/tasks", files={"file": (name, data)})
            assert response.status_code == status, (i, name, response.text)

        async def extract(i: int) -> None:
            name, data, status = ("tone.wav", wav, 200) if i % 2 else bad_extract[i // 2 % len(bad_extract)]
            response = await http.post("/v1/media/extract-audio", files={"file": (name, data)})
            assert response.status_code == status, (i, name, response.text)

        # Warm up first: the database pool's connections are open descriptors that rightly stay.
        await upload(0)
        await upload(1)
        await extract(0)
        await extract(1)
        before = open_descriptors(database)
        for i in range(200):
            await upload(i)
        for i in range(50):
            await extract(i)
        after = open_descriptors(database)
    leaked = {fd: target for fd, target in after.items() if fd not in before or before[fd] != target}
    assert not [t for t in after.values() if str(temp_dir) in t], leaked
    assert len(after) <= len(before), leaked
    assert list(temp_dir.iterdir()) == []


async def test_a_request_cancelled_while_decoding_leaves_no_file(
    settings: Settings, temp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decoding thread cannot be stopped: what it writes after its request was cancelled is deleted."""
    started, release = threading.Event(), threading.Event()
    real = intake.decode_for_storage

    def held(source: Path, **options: Any) -> DecodedMedia:
        started.set()
        release.wait(60)
        return real(source, **options)

    monkeypatch.setattr(intake, "decode_for_storage", held)

    async def body() -> AsyncIterator[bytes]:
        yield tone_wav()

    request = asyncio.create_task(intake.decode_upload(body(), settings))
    assert await asyncio.to_thread(started.wait, 60), "the decode never started"
    request.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await request

    async def cleaned() -> bool:
        return not list(temp_dir.iterdir())

    await wait_for(cleaned)


async def test_a_download_the_client_leaves_mid_way_is_deleted(tmp_path: Path) -> None:
    """Starlette runs a response's background task only after a complete send; the extracted file must go anyway."""
    output = tmp_path / "extract.wav"
    output.write_bytes(tone_wav(5.0))
    response = TemporaryFileResponse(output, media_type="audio/wav")

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # as a server does while the client stays: nothing to say
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            raise OSError("the client went away")

    scope = {"type": "http", "method": "GET", "headers": [], "path": "/"}
    with pytest.raises(OSError, match="went away"):
        await response(scope, receive, send)
    assert not output.exists()
