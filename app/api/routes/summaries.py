"""LLM summaries of a completed task's transcript."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.bodies import content_type_of, group, merge_query, read_json_object, validate
from app.api.deps import PrincipalDep, SessionDep, SettingsDep, TaskId
from app.api.openapi import options_openapi
from app.db.models import Summary
from app.errors import UnsupportedMediaType
from app.schemas.summaries import SummaryCreate, SummaryDetail, SummaryList, SummaryUsage
from app.services import summaries
from app.services import tasks as task_service

router = APIRouter(prefix="/v1/tasks", tags=["summaries"])
SummaryId = Annotated[
    str, PathParam(description="Summary id.", examples=["1d7e5a0c-9b1f-4a51-8f0e-2b6a6c0e7c11"], max_length=64)
]


def detail_of(summary: Summary) -> SummaryDetail:
    """The API model of a stored summary."""
    return SummaryDetail(
        id=summary.id,
        task_id=summary.task_id,
        status=summary.status,
        model=summary.model,
        prompt=summary.prompt,
        output_language=summary.output_language,
        text=summary.text,
        chunks=summary.chunks,
        llm_calls=summary.llm_calls,
        usage=SummaryUsage(prompt_tokens=summary.prompt_tokens, completion_tokens=summary.completion_tokens),
        error=summary.error,
        created_at=summary.created_at,
        finished_at=summary.finished_at,
    )


@router.post(
    "/{task_id}/summaries",
    response_model=SummaryDetail,
    status_code=201,
    summary="Summarise a transcript",
    description="Summarise a completed task's transcript with the configured OpenAI-compatible LLM. Long "
    "transcripts are summarised in parts that fit the model's context, then combined. The summary is stored "
    "(also when it fails) and listed under the task. 503 when no LLM is configured, 502/504 when the LLM fails.",
    responses={
        409: {"description": "The task is not completed."},
        415: {"description": "A body that is not JSON."},
        503: {"description": "No LLM configured."},
    },
    openapi_extra=options_openapi(SummaryCreate, media_type="application/json"),
)
async def create_summary(
    task_id: TaskId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> SummaryDetail:
    """Run a summary now and return it."""
    options = await _options(request)
    task = await task_service.get_task(session=session, task_id=task_id, owner=principal.scope)
    transcript = await task_service.get_result(session=session, task=task)
    await session.commit()  # no transaction stays open while the LLM answers
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    summary = await summaries.create_summary(
        sessions=sessions,
        task_id=task.id,
        pieces=[segment.text for segment in transcript.segments] or [transcript.text],
        request=summaries.SummaryRequest(
            model=options.model or settings.llm_model,
            prompt=options.prompt,
            output_language=options.output_language,
        ),
        settings=settings,
    )
    return detail_of(summary)


async def _options(request: Request) -> SummaryCreate:
    """Options from a JSON body (optional) and the query string, none ignored (422 naming an unknown one)."""
    body: dict[str, Any] = {}
    if await request.body():
        if content_type_of(request) != "application/json":
            raise UnsupportedMediaType("Send the summary options as application/json (or in the query string).")
        body = await read_json_object(request)
    options: SummaryCreate = validate(
        SummaryCreate, merge_query(body, group(request.query_params.multi_items()), SummaryCreate)
    )
    return options


@router.get(
    "/{task_id}/summaries",
    response_model=SummaryList,
    summary="List summaries",
    description="The task's summaries, newest first, with failed ones and their errors.",
)
async def list_summaries(task_id: TaskId, session: SessionDep, principal: PrincipalDep) -> SummaryList:
    """Every summary of the task."""
    await task_service.get_task(session=session, task_id=task_id, owner=principal.scope)
    return SummaryList(items=[detail_of(s) for s in await summaries.list_summaries(session=session, task_id=task_id)])


@router.get(
    "/{task_id}/summaries/{summary_id}",
    response_model=SummaryDetail,
    summary="Get a summary",
    description="One summary of the task.",
)
async def get_summary(
    task_id: TaskId, summary_id: SummaryId, session: SessionDep, principal: PrincipalDep
) -> SummaryDetail:
    """One summary."""
    await task_service.get_task(session=session, task_id=task_id, owner=principal.scope)
    return detail_of(await summaries.get_summary(session=session, task_id=task_id, summary_id=summary_id))
