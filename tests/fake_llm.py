"""A small OpenAI-compatible chat server for summary tests (real HTTP on loopback)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar


class FakeLLM(BaseHTTPRequestHandler):
    """`POST /v1/chat/completions` answering `summary#N` (N counts calls), or a scripted failure."""

    requests: ClassVar[list[dict[str, Any]]] = []
    mode: ClassVar[str] = "ok"
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with self.lock:
            self.requests.append({"path": self.path, "auth": self.headers.get("authorization"), "body": body})
            number = len(self.requests)
        if self.mode == "slow":
            time.sleep(2)
        if self.mode == "error":
            return self._send(500, {"error": {"message": "model overloaded", "type": "server_error"}})
        if self.mode == "bad-key":  # providers echo (part of) the key they refused
            message = f"Incorrect API key provided: {self.headers.get('authorization', '')[7:]}"
            return self._send(401, {"error": {"message": message, "type": "invalid_request_error"}})
        self._send(
            200,
            {
                "id": f"chatcmpl-{number}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"summary#{number}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
            },
        )

    def _send(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
