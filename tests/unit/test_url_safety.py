"""The outbound URL policy."""

from __future__ import annotations

import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.errors import URLNotAllowed
from app.services.outbound import pin, resolve_checked
from crawlers.direct import download


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.mp3",
        "http://localhost:8080/a.mp3",
        "http://[::1]/a.mp3",
        "http://[::ffff:127.0.0.1]/a.mp3",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/a.mp3",
        "http://2130706433/a.mp3",
        "file:///etc/passwd",
        "ftp://example.com/a.mp3",
    ],
)
async def test_non_public_and_non_http_urls_are_refused(url: str) -> None:
    with pytest.raises(URLNotAllowed):
        await resolve_checked(url)


async def test_allowlist_admits_loopback() -> None:
    assert [str(a) for a in await resolve_checked("http://127.0.0.1:9/x", allowlist=["127.0.0.0/8"])] == ["127.0.0.1"]
    assert await resolve_checked("http://localhost:9/x", allowlist=["localhost"])


async def test_a_download_connects_to_the_address_that_was_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DNS rebinding: the name answers a public-looking check once, then something else; the download must use the
    first, checked answer (and still send the name as Host)."""
    seen_hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen_hosts.append(self.headers["host"])
            body = b"RIFF" + b"\0" * 100
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    real_getaddrinfo = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "media.example":
            lookups.append(host)
            host = "127.0.0.1" if len(lookups) == 1 else "127.0.0.3"  # nothing listens on the second answer
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    try:
        path = await download(f"http://media.example:{port}/a.wav", max_bytes=10_000, allowlist=["127.0.0.1"])
    finally:
        server.shutdown()
        server.server_close()
    assert path.read_bytes().startswith(b"RIFF") and seen_hosts == [f"media.example:{port}"]
    assert lookups == ["media.example"]
    path.unlink()


def test_pinned_https_keeps_the_name_for_tls() -> None:
    target = pin("https://user@example.com:8443/a?b=1", ipaddress.ip_address("93.184.216.34"))
    assert target.url == "https://93.184.216.34:8443/a?b=1"
    assert target.headers == {"host": "example.com:8443"} and target.extensions == {"sni_hostname": "example.com"}
    assert pin("http://example.com/a", ipaddress.ip_address("2606:2800::1")).url == "http://[2606:2800::1]/a"
