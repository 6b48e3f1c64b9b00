"""A loopback HTTP server with media, pages and redirects, for URL tasks."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.audio import clip

# Pages with a <video>; `?forbidden=PORT` names the port of a listener on 127.0.0.2, which tests do not allowlist.
PAGES = {
    "/video-page.html": '<html><head><title>JFK video</title></head><body><video src="/jfk.wav"></video></body></html>',
    "/no-media.html": "<html><head><title>Nothing here</title></head><body><p>Just text.</p></body></html>",
    "/hls-page.html": '<html><body><video src="/playlist.m3u8"></video></body></html>',
    "/garbage-page.html": '<html><body><video src="/garbage.mp3"></video></body></html>',
    "/page-to-forbidden-redirect.html": (
        '<html><body><video src="/forbidden-redirect?forbidden={forbidden}"></video></body></html>'
    ),
    "/page-to-forbidden.html": '<html><body><video src="http://127.0.0.2:{forbidden}/media.wav"></video></body></html>',
}


class MediaHandler(BaseHTTPRequestHandler):
    """/jfk.wav, /redirect (to /jfk.wav), /garbage.mp3, pages, redirects and links to 127.0.0.2, /text; else 404."""

    def do_GET(self) -> None:
        if self.path == "/jfk.wav":
            body = clip("jfk.wav").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/jfk.wav")
            self.end_headers()
        elif self.path == "/page.html":
            body = b'<html><head><title>JFK inaugural</title></head><body><audio src="/jfk.wav"></audio></body></html>'
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/to-loopback":  # another loopback address, which is not allowlisted
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.2:{self.server.server_address[1]}/jfk.wav")
            self.end_headers()
        elif self.path == "/page-to-loopback.html":
            body = (
                f'<html><body><audio src="http://127.0.0.2:{self.server.server_address[1]}/jfk.wav"></audio>'.encode()
            )
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif (path := urlsplit(self.path).path) in PAGES:
            self._html(PAGES[path].replace("{forbidden}", self._query("forbidden")).encode())
        elif self.path == "/playlist.m3u8":
            body = b"#EXTM3U\n#EXT-X-TARGETDURATION:11\n#EXTINF:11.0,\n/jfk.wav\n#EXT-X-ENDLIST\n"
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.apple.mpegurl")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/garbage.mp3":
            body = bytes(range(256)) * 64
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif urlsplit(self.path).path == "/forbidden-redirect":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.2:{self._query('forbidden')}/media.wav")
            self.end_headers()
        elif self.path == "/text":
            body = b"<html>not media</html>" * 100
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def _query(self, name: str) -> str:
        return parse_qs(urlsplit(self.path).query).get(name, [""])[0]

    def _html(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class TrickleHandler(BaseHTTPRequestHandler):
    """/trickle.wav and /trickle.html: a header that promises a lot, then one byte every 0.1 s for up to a minute."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if self.path.endswith(".html") else "audio/wav")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(600):
                self.wfile.write(b"<" if self.path.endswith(".html") else b"\0")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            return  # the client gave up, as it should

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Listener:
    """A raw TCP listener on 127.0.0.2 that counts the connections it accepts and closes them at once."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.2", 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.closing.set()
        self.thread.join()
        self.sock.close()
