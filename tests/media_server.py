"""A loopback HTTP server with media, pages and redirects, for URL tasks."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.audio import clip


class MediaHandler(BaseHTTPRequestHandler):
    """/jfk.wav, /redirect (to /jfk.wav), pages, redirects and links to 127.0.0.2, /text; anything else 404."""

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
        elif self.path == "/text":
            body = b"<html>not media</html>" * 100
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        pass
