"""Calls to the summary LLM: a total deadline, a bounded answer, allowed models, errors with the key taken out."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass

import httpx2
import openai
import pydantic
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from app.errors import AppError, LLMAnswerTooLarge, LLMFailed, LLMModelNotAllowed, LLMNotConfigured, LLMTimeout
from app.services.outbound import pin, resolve_checked
from app.settings import Settings

ANSWER_BYTES = 64 * 1024
"""Room in an answer for everything but the text (ids, usage, JSON framing)."""
BYTES_PER_TOKEN = 32
"""A generous bound on one output token as sent: a CJK character escaped in JSON (\\uXXXX) is 6 bytes."""
CHARS_PER_TOKEN = 16
"""A generous bound on the characters of one output token; an answer past it did not honour max_tokens."""
KEY_WINDOW = 8
"""Any this many characters of the key in a row count as the key (in any letter case)."""


@dataclass(frozen=True)
class Answer:
    """The text of a chat completion and what it cost."""

    text: str
    usage: CompletionUsage | None


class _CheckedTransport(httpx2.AsyncBaseTransport):
    """The SDK's transport under the outbound policy: each request it sends (so each redirect hop) is checked and
    connects to the checked address, except requests to the operator's own endpoint (`trusted`, host and port)."""

    def __init__(self, *, allowlist: Sequence[str], trusted: tuple[str, int] | None) -> None:
        self._allowlist = list(allowlist)
        self._trusted = trusted
        self._inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Check, pin, send."""
        if (request.url.host, request.url.port or _default_port(request.url.scheme)) != self._trusted:
            url = str(request.url)
            target = pin(url, (await resolve_checked(url, allowlist=self._allowlist))[0])
            request.url = httpx2.URL(target.url)
            request.headers.update(target.headers)
            request.extensions = {**request.extensions, **target.extensions}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._inner.aclose()


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _origin(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL, as httpx spells them."""
    parsed = httpx2.URL(url)
    return parsed.host, parsed.port or _default_port(parsed.scheme)


def make_client(settings: Settings) -> openai.AsyncOpenAI:
    """An OpenAI SDK client for the configured endpoint."""
    if not settings.llm_configured:
        raise LLMNotConfigured()
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "not-needed"
    # The operator chose the endpoint, so its own host and port need no allowlist entry (an entry would open that
    # host to every tenant's file_url and callback_url); every other request, such as a redirect elsewhere, passes
    # the same outbound policy as media and callbacks, at connect time.
    trusted = _origin(settings.llm_base_url) if settings.llm_base_url else None
    transport = _CheckedTransport(allowlist=settings.allowed_hosts, trusted=trusted)
    http = openai.DefaultAsyncHttpxClient(transport=transport, trust_env=False)
    # No retries: one request, whose own answer is reported, within one deadline (`chat`); the SDK's timeout is
    # per read only.
    return openai.AsyncOpenAI(
        api_key=key,
        base_url=settings.llm_base_url or None,
        timeout=settings.llm_timeout_seconds,
        max_retries=0,
        http_client=http,
    )


def check_model(model: str, settings: Settings) -> None:
    """Refuse a model the operator did not allow (requests run on the operator's key)."""
    allowed = sorted({settings.llm_model, *settings.llm_allowed_models})
    if model not in allowed:
        names = ", ".join(repr(name) for name in allowed)
        raise LLMModelNotAllowed(
            f"The model {model!r} is not allowed for summaries; use one of {names} "
            "(the server's WHISPER_LLM_ALLOWED_MODELS).",
            field="model",
        )


async def chat(
    client: openai.AsyncOpenAI,
    *,
    model: str,
    messages: list[ChatCompletionMessageParam],
    max_tokens: int,
    deadline: float,
) -> Answer:
    """One chat completion, within `deadline` seconds in all, reading at most what an answer of `max_tokens`
    tokens can take."""
    limit = ANSWER_BYTES + BYTES_PER_TOKEN * max_tokens
    try:
        async with asyncio.timeout(deadline):
            async with client.chat.completions.with_streaming_response.create(
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                temperature=0.2,
                extra_headers={"Accept-Encoding": "identity"},  # read raw and capped: no decompression bombs
            ) as response:
                body = bytearray()
                async for chunk in response.http_response.aiter_raw():
                    body += chunk
                    if len(body) > limit:
                        raise LLMAnswerTooLarge()
    except TimeoutError as exc:
        raise LLMTimeout(
            f"The LLM endpoint did not answer within {deadline:g} s (WHISPER_LLM_TIMEOUT_SECONDS)."
        ) from exc
    try:
        completion = ChatCompletion.model_validate_json(body)
    except pydantic.ValidationError as exc:
        raise LLMFailed("The LLM endpoint answered something that is not a chat completion.") from exc
    return Answer(_text_of(completion, max_tokens), completion.usage)


def _text_of(completion: ChatCompletion, max_tokens: int) -> str:
    if not completion.choices or not completion.choices[0].message.content:
        raise LLMFailed("The LLM returned an empty answer.")
    text = completion.choices[0].message.content.strip()
    if len(text) > CHARS_PER_TOKEN * max_tokens:
        raise LLMAnswerTooLarge()
    return text


def as_app_error(exc: Exception, settings: Settings) -> AppError:
    """The API error for a failed LLM call, with the key removed from whatever the provider said."""
    if isinstance(exc, openai.APIConnectionError) and isinstance(exc.__cause__, AppError):
        exc = exc.__cause__  # raised while the SDK read the answer (an oversized one)
    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return LLMTimeout()
    if isinstance(exc, openai.APIStatusError):
        return LLMFailed(_redacted(f"The LLM endpoint answered {exc.status_code}: {exc.message}", settings))
    if isinstance(exc, openai.APIConnectionError):
        return LLMFailed(_redacted(f"The LLM endpoint could not be reached: {exc.__cause__ or exc}", settings))
    return LLMFailed(_redacted(f"The LLM request failed: {type(exc).__name__}: {exc}", settings))


def _redacted(message: str, settings: Settings) -> str:
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
    return redact_secret(message, key)[:1000]


def redact_secret(text: str, secret: str) -> str:
    """`text` with every trace of `secret` replaced by `***`: the secret in any letter case, any word holding
    KEY_WINDOW of its characters in a row, and the masked forms providers print (`sk-proj-****...abcd`)."""
    if not secret:
        return text
    if len(secret) < KEY_WINDOW:
        return re.sub(re.escape(secret), "***", text, flags=re.IGNORECASE)
    text = _mask_windows(text, _windows(secret.lower()))
    return re.sub(r"[^\s\"'`<>()\[\]{},;]+", lambda word: _mask_shortened(word[0], secret.lower()), text)


def _windows(key: str) -> set[str]:
    return {key[i : i + KEY_WINDOW] for i in range(len(key) - KEY_WINDOW + 1)}


def _mask_windows(text: str, windows: set[str]) -> str:
    """Every word that holds one of `windows` (case-insensitively) becomes `***`."""
    lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)  # same length: positions line up
    covered = bytearray(len(text))
    for i in range(len(text) - KEY_WINDOW + 1):
        if lowered[i : i + KEY_WINDOW] in windows:
            covered[i : i + KEY_WINDOW] = b"\x01" * KEY_WINDOW
    out: list[str] = []
    i = done = 0
    while i < len(text):
        if not covered[i]:
            i += 1
            continue
        start = i
        while i < len(text) and covered[i]:
            i += 1
        while start > done and not _delimiter(text[start - 1]):
            start -= 1
        while i < len(text) and not _delimiter(text[i]) and not (text[i] in ".:!?" and _ends_word(text, i)):
            i += 1
        out += [text[done:start], "***"]
        done = i
    return "".join([*out, text[done:]])


def _delimiter(char: str) -> bool:
    return char.isspace() or char in "\"'`<>()[]{},;"


def _ends_word(text: str, i: int) -> bool:
    """Whether text[i:] starts with sentence punctuation that ends the word."""
    rest = text[i:]
    core = rest.lstrip(".:!?")
    return not core or _delimiter(core[0])


def _mask_shortened(word: str, key: str) -> str:
    """A word that is the key with its middle masked (`sk-test-0****cret`) becomes `***`."""
    core = word.rstrip(".:!?")
    masked = re.fullmatch(r"([\w-]*?)(?:\*{3,}|\.{3,}|…)([\w-]*)", core)
    if masked:
        head, tail = masked.groups()
        if len(head) + len(tail) >= 3 and key.startswith(head.lower()) and key.endswith(tail.lower()):
            return "***" + word[len(core) :]
    return word
