"""The evl API's TikTok and Douyin routes: a video link in form fields becomes a page task (the worker fetches it
through yt-dlp under the outbound policy)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import Field, field_validator

from app.api.bodies import content_type_of, group, validate
from app.api.compat.evl.docs import crawler_openapi
from app.api.compat.evl.models import TaskOptions
from app.api.compat.evl.tasks import create_evl_task, router
from app.api.deps import PrincipalDep, SessionDep, SettingsDep
from app.api.limits import read_form
from app.services.platforms import detect_platform

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
PLATFORM_NAMES = {"tiktok": "TikTok", "douyin": "Douyin"}


class VideoTaskForm(TaskOptions):
    """The form of /api/tiktok/video_task and /api/douyin/video_task."""

    url: str = Field(max_length=2048, description="The video link.")
    save_data_in_db: bool | None = Field(None, description="Accepted for compatibility.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("Input should be a valid URL: an absolute http:// or https:// link")
        return value


async def _form_fields(request: Request) -> dict[str, Any]:
    """The form's fields; any other body holds none (so `url` is reported missing, as the evl API does)."""
    if content_type_of(request) not in FORM_TYPES:
        return {}
    form = await read_form(request, max_files=0)
    try:
        return group(form.multi_items())
    finally:
        await form.close()


def _crawler_route(platform: str) -> None:
    name = PLATFORM_NAMES[platform]

    async def create_video_task(
        request: Request, session: SessionDep, settings: SettingsDep, principal: PrincipalDep
    ) -> JSONResponse:
        form: VideoTaskForm = validate(VideoTaskForm, await _form_fields(request))
        if detect_platform(form.url) not in (platform, None):
            message = f"Invalid {name} video URL"
            return JSONResponse({"detail": message}, status_code=400, headers={"X-Error": message})
        given = form.model_dump(exclude={"url", "save_data_in_db"}, exclude_none=True)
        options = TaskOptions.model_validate({**given, "platform": form.platform or platform})
        return await create_evl_task(
            request=request,
            session=session,
            settings=settings,
            principal=principal,
            options=options,
            file_url=form.url,
            upload=None,
            platform=platform,
        )

    router.add_api_route(
        f"/{platform}/video_task",
        create_video_task,
        methods=["POST"],
        summary=f"Create a task from a {name} video",
        description=f"Form fields (url-encoded or multipart): `url` (a {name} video link) and any task option of "
        "/api/whisper/tasks/create. The worker fetches the page's media; the answer is the new task object, with "
        "`file_url` the link given.",
        name=f"evl_create_{platform}_task",
        openapi_extra=crawler_openapi(name),
    )


for _platform in PLATFORM_NAMES:
    _crawler_route(_platform)
