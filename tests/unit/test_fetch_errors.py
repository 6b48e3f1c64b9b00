"""Fetching a media URL that fails says what happened and what to do, never httpx's bare text."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from app.errors import MediaFetchFailed
from crawlers.direct import download


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def dropping_server() -> Iterator[int]:
    """Answers with headers and a few body bytes, then resets the connection (RST)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]

    def serve() -> None:
        with listener:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: 100000\r\n\r\nRIFF")
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    listener.close()
    thread.join(timeout=5)


async def test_nothing_listening_says_it_could_not_connect(closed_port: int) -> None:
    with pytest.raises(MediaFetchFailed) as caught:
        await download(f"http://127.0.0.1:{closed_port}/a.wav", max_bytes=10_000, allowlist=["127.0.0.1"])
    detail = caught.value.detail
    assert f"Could not connect to 127.0.0.1:{closed_port}" in detail and "check" in detail
    assert "ConnectError" not in detail and "All connection attempts failed" not in detail


async def test_a_dropped_connection_says_so(dropping_server: int) -> None:
    with pytest.raises(MediaFetchFailed) as caught:
        await download(f"http://127.0.0.1:{dropping_server}/a.wav", max_bytes=1_000_000, allowlist=["127.0.0.1"])
    detail = caught.value.detail
    assert "connection" in detail and "dropped" in detail and "try again" in detail
    assert "Error:" not in detail and "()" not in detail
