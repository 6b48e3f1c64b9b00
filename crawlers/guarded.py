"""The only way yt-dlp reaches the network here: every request and every redirect hop passes the outbound policy and
connects to the address that was checked, within the fetch's deadline, size cap and stop event."""

from __future__ import annotations

import email.message
import io
import threading
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import yt_dlp
from yt_dlp.networking.common import Request as YRequest
from yt_dlp.networking.common import RequestHandler, Response
from yt_dlp.networking.exceptions import HTTPError, RequestError, TransportError

from app.errors import AppError, FetchTimedOut, TranscriptionInterrupted, URLNotAllowed
from app.services.outbound import pin, resolve_checked_sync

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)


@dataclass
class Guard:
    """The limits of one fetch, shared by the event loop and yt-dlp's thread."""

    allowlist: tuple[str, ...]
    deadline: float
    """time.monotonic() by which the whole fetch must be over."""
    max_bytes: int
    """Cap on one answer yt-dlp reads (pages, API calls); the media is downloaded elsewhere."""
    stop: threading.Event
    aborted: threading.Event = field(default_factory=threading.Event)
    failure: AppError | BaseException | None = None
    """Why a request was refused or given up: the error the fetch reports instead of yt-dlp's wrapping of it."""

    def remaining(self) -> float:
        """Seconds left before the deadline; raises once there are none, or when the task was stopped."""
        if self.stop.is_set() or self.aborted.is_set():
            raise self._fail(TranscriptionInterrupted())
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self._fail(FetchTimedOut())
        return left

    def refuse(self, exc: URLNotAllowed) -> RequestError:
        """Record a policy refusal; the returned error is what yt-dlp sees."""
        return self._fail(exc)

    def _fail(self, exc: BaseException) -> RequestError:
        self.failure = self.failure or exc
        return RequestError(f"request not made: {exc}")


class GuardedRH(RequestHandler):  # type: ignore[misc]  # yt-dlp ships no types
    """A yt-dlp request handler that enforces the outbound policy on each hop and never follows a redirect itself
    without checking it; it ignores proxies and reads at most `guard.max_bytes` of an answer."""

    _SUPPORTED_URL_SCHEMES = ("http", "https")
    _SUPPORTED_PROXY_SCHEMES = None
    _SUPPORTED_FEATURES = None
    guard: Guard

    def _check_extensions(self, extensions: dict[str, Any]) -> None:
        super()._check_extensions(extensions)
        for name in ("cookiejar", "timeout", "legacy_ssl", "keep_header_casing"):
            extensions.pop(name, None)

    def _send(self, request: YRequest) -> Response:
        url, method, data = request.url, request.method, request.data
        headers = self._get_headers(request)
        jar = self._get_cookiejar(request)
        body = data if isinstance(data, bytes) or data is None else b"".join(data)
        for _ in range(MAX_REDIRECTS + 1):
            status, reason, response_headers, content = self._one_hop(url, method, headers, body, jar, request)
            location = response_headers.get("location")
            if status in REDIRECTS and location:
                target = urljoin(url, location)
                if urlsplit(target).hostname != urlsplit(url).hostname:  # credentials stay with their host
                    headers = {k: v for k, v in headers.items() if k.lower() not in ("cookie", "authorization")}
                url = target
                if status == 303 or (status in (301, 302) and method == "POST"):
                    method, body = "GET", None
                continue
            response = Response(io.BytesIO(content), url, _plain(response_headers), status, reason)
            if not 200 <= status < 300:
                raise HTTPError(response)
            return response
        raise TransportError(f"more than {MAX_REDIRECTS} redirects")

    def _one_hop(
        self,
        url: str,
        method: str,
        headers: dict[str, str],
        body: bytes | None,
        jar: Any,
        request: YRequest,
    ) -> tuple[int, str, httpx.Headers, bytes]:
        guard = self.guard
        try:
            address = resolve_checked_sync(url, allowlist=guard.allowlist)[0]
        except URLNotAllowed as exc:
            raise guard.refuse(exc) from exc
        target = pin(url, address)
        sent = {**headers, **target.headers}
        if cookie := jar.get_cookie_header(url):
            sent["Cookie"] = cookie
        timeout = min(self._calculate_timeout(request), guard.remaining())
        try:
            with (
                httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=self.verify) as client,
                client.stream(method, target.url, headers=sent, content=body, extensions=target.extensions) as answer,
            ):
                _store_cookies(jar, url, answer.headers)
                content = bytearray()
                for chunk in answer.iter_bytes():  # as it arrives: a trickle is checked byte by byte
                    content += chunk
                    guard.remaining()
                    if len(content) > guard.max_bytes:
                        raise TransportError(f"the answer is larger than {guard.max_bytes} bytes")
                return answer.status_code, answer.reason_phrase, answer.headers, bytes(content)
        except httpx.HTTPError as exc:
            raise TransportError(cause=exc) from exc


def _plain(headers: httpx.Headers) -> dict[str, str]:
    """Response headers as yt-dlp reads them: the body is already decoded and complete."""
    return {k: v for k, v in headers.items() if k.lower() not in ("content-encoding", "content-length")}


def _store_cookies(jar: Any, url: str, headers: httpx.Headers) -> None:
    """Keep what the site sets, as a browser would (some extractors need the page's cookies for their API calls)."""
    if "set-cookie" not in headers:
        return
    message = email.message.Message()
    for value in headers.get_list("set-cookie"):
        message["Set-Cookie"] = value

    class _Answer:
        def info(self) -> email.message.Message:
            return message

    jar.extract_cookies(_Answer(), urllib.request.Request(url))  # noqa: S310 (no request: the cookie rules need it)


class GuardedYoutubeDL(yt_dlp.YoutubeDL):  # type: ignore[misc]
    """A YoutubeDL whose only request handler is GuardedRH bound to `guard` (no other handler can be chosen)."""

    def __init__(self, params: dict[str, Any], *, guard: Guard) -> None:
        self._guard = guard
        super().__init__(params)

    def build_request_director(self, handlers: Iterable[Any], preferences: Any = None) -> Any:
        director = super().build_request_director([GuardedRH], [])
        for handler in director.handlers.values():
            handler.guard = self._guard
        return director
