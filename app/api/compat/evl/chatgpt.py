"""The evl API's ChatGPT summary route, on the summary service: the task's transcript summarised by the configured
LLM, or by OpenAI with the caller's own key for that one call (the key is never stored, logged or echoed)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Request, Response
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.compat.evl.envelope import envelope, error_response
from app.api.compat.evl.models import DEFAULT_SUMMARY_PROMPT, SummaryRequest
from app.api.compat.evl.tasks import finished_task, router
from app.api.deps import PrincipalDep, SessionDep, SettingsDep
from app.db.models import Summary
from app.errors import AppError
from app.schemas import evl
from app.services import summaries
from app.services import tasks as task_service
from app.settings import Settings

KEY_SHOWN = "***"


def _settings_for(body: SummaryRequest, settings: Settings) -> Settings:
    """The LLM settings of this call: the caller's key, if any, in place of the server's. The endpoint and the model
    allowlist stay the operator's: a key of one's own must not open models the operator did not allow."""
    if not body.chatgpt_api_key:
        return settings
    return settings.model_copy(update={"llm_api_key": SecretStr(body.chatgpt_api_key)})


def chat_completion(summary: Summary) -> dict[str, Any]:
    """The summary as an OpenAI chat completion object (as the evl API returns the SDK's)."""
    prompt_tokens, completion_tokens = summary.prompt_tokens or 0, summary.completion_tokens or 0
    created = summary.finished_at or summary.created_at
    return {
        "id": f"chatcmpl-{summary.id}",
        "object": "chat.completion",
        "created": int(created.timestamp()),
        "model": summary.model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {
                    "role": "assistant",
                    "content": summary.text,
                    "refusal": None,
                    "audio": None,
                    "function_call": None,
                    "tool_calls": None,
                },
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "completion_tokens_details": None,
            "prompt_tokens_details": None,
        },
        "service_tier": None,
        "system_fingerprint": None,
    }


@router.post(
    "/chatgpt/summary",
    summary="Summarize content using ChatGPT based on task ID",
    description="JSON body. Summarises a completed task's transcript with the server's LLM "
    "(WHISPER_LLM_BASE_URL / WHISPER_LLM_MODEL), the caller's `chatgpt_api_key` replacing the server's key for this "
    "call only (sent to that same endpoint; the server's model allowlist still applies); the key "
    "is never stored, logged or echoed (`params` shows `***`). The summary is stored with the task "
    "(GET /v1/tasks/{id}/summaries). 202 while the task runs, 503 without an LLM, 502/504 when the LLM fails.",
)
async def summarize(
    request: Request,
    body: Annotated[SummaryRequest, Body(description="The task and the summary's options.")],
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> Response:
    """Summarise the task's transcript now."""
    prompt = body.chatgpt_prompt or DEFAULT_SUMMARY_PROMPT
    echo = body.model_dump() | {"chatgpt_api_key": KEY_SHOWN if body.chatgpt_api_key else "", "chatgpt_prompt": prompt}
    task = await finished_task(request, session, principal, body.task_id)
    if isinstance(task, Response):
        return task
    transcript = await task_service.get_result(session=session, task=task)
    await session.commit()  # no transaction stays open while the LLM answers
    model = body.chatgpt_model or settings.llm_model
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    try:
        summary = await summaries.create_summary(
            sessions=sessions,
            task_id=task.id,
            pieces=[segment.text for segment in transcript.segments] or [transcript.text],
            request=summaries.SummaryRequest(model=model, prompt=prompt, output_language=body.output_language),
            settings=_settings_for(body, settings),
        )
    except AppError as exc:
        return error_response(request, exc.status_code, exc.detail, params=echo, headers=exc.headers)
    text = evl.result_object(transcript, task.options)["text"]
    return envelope(request, {"task_text": text, "chat_completion": chat_completion(summary)}, echo)
