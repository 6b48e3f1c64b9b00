"""A small OpenAI-compatible chat server for summary tests (real HTTP on loopback)."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

ENDLESS_SECONDS = 30.0
"""How long the "hang" and "trickle" modes go on unless the client hangs up first."""
HUGE_CONTENT_BYTES = 64 * 2**20
"""The length of the answer the "huge" mode gives."""
KEY_ECHOES = {
    "exact": lambda key: key,
    "lower": str.lower,
    "upper": str.upper,
    "masked": lambda key: f"{key[:9]}{'*' * 20}{key[-4:]}",  # how providers print a refused key
    "inside": lambda key: f"key={key[2:-2].lower()}",
    "slice": lambda key: key[5:17],  # 12 characters from the middle
}


class FakeLLM(BaseHTTPRequestHandler):
    """`POST /v1/chat/completions` answering `summary#N` (N counts calls), a scripted failure, or `redirect:URL`;
    "echo-key" answers successfully with the key it was sent, echoed as `key_echo` says."""

    requests: ClassVar[list[dict[str, Any]]] = []
    mode: ClassVar[str] = "ok"
    key_echo: ClassVar[str] = "exact"  # how "bad-key" echoes the key it refused (see KEY_ECHOES)
    sent: ClassVar[int] = 0  # bytes of body written, for "huge"
    gate: ClassVar[threading.Event] = threading.Event()  # "gated" answers once this is set
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with self.lock:
            self.requests.append({"path": self.path, "auth": self.headers.get("authorization"), "body": body})
            number = len(self.requests)
        if self.mode.startswith("redirect:"):
            self.send_response(307)
            self.send_header("Location", self.mode.removeprefix("redirect:"))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if self.mode == "slow":
            time.sleep(2)
        if self.mode == "error":
            return self._send(500, {"error": {"message": "model overloaded", "type": "server_error"}})
        if self.mode == "bad-key":  # providers echo (part of) the key they refused
            key = KEY_ECHOES[self.key_echo](self.headers.get("authorization", "")[7:])
            message = f"Incorrect API key provided: {key}. You can find your API key at https://example.com."
            return self._send(401, {"error": {"message": message, "type": "invalid_request_error"}})
        if self.mode == "gated":  # answers when the test opens the gate
            self.gate.wait(ENDLESS_SECONDS)
            return self._send(200, self._completion(number, body, f"summary#{number}"))
        if self.mode == "hang":  # never answers
            self._client_gone(ENDLESS_SECONDS)
            return None
        if self.mode == "trickle":  # a valid answer, one byte at a time: no single read waits long
            return self._trickle(self._completion(number, body, f"summary#{number}"))
        if self.mode == "echo-key":  # a successful answer that repeats the key (a prompt-injected transcript)
            key = KEY_ECHOES[self.key_echo](self.headers.get("authorization", "")[7:])
            return self._send(200, self._completion(number, body, f"summary#{number} (your key is {key})."))
        if self.mode == "huge":
            return self._huge(number, body)
        self._send(200, self._completion(number, body, f"summary#{number}"))

    def _completion(self, number: int, body: dict[str, Any], content: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
        }

    def _trickle(self, payload: dict[str, Any]) -> None:
        data = b" " * int(ENDLESS_SECONDS * 10) + json.dumps(payload).encode()
        self._start(200, len(data))
        for i in range(len(data)):
            if data[i : i + 1] == b" " and self._client_gone(0.1):
                return
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()

    def _huge(self, number: int, body: dict[str, Any]) -> None:
        head, tail = json.dumps(self._completion(number, body, "@")).encode().split(b"@")
        self._start(200, len(head) + HUGE_CONTENT_BYTES + len(tail))
        chunk = b"a" * 65536
        try:
            for data in [head, *[chunk] * (HUGE_CONTENT_BYTES // len(chunk)), tail]:
                self.wfile.write(data)
                with self.lock:
                    FakeLLM.sent += len(data)
        except OSError:
            pass  # the client stopped reading and hung up

    def _client_gone(self, wait: float) -> bool:
        """Whether the client closed the connection (waiting up to `wait` seconds for it to)."""
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], left)
            if readable:
                return not self.connection.recv(1, socket.MSG_PEEK)
        return False

    def _start(self, code: int, length: int) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.flush()

    def _send(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self._start(code, len(data))
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
