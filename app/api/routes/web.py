"""The web page at `/` (plain HTML, CSS and JavaScript in app/web; no build step) and what it needs to know."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from app.api.deps import SettingsDep
from app.schemas.tasks import ChineseScript

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
router = APIRouter()


class Capabilities(BaseModel):
    """What this server offers, for clients that adapt to it (the web page)."""

    summaries: bool = Field(description="Whether an LLM is configured for summaries.", examples=[True])
    default_model: str = Field(description="Model used when a request names none.", examples=["base"])
    max_upload_bytes: int = Field(description="Largest accepted upload.", examples=[1073741824])
    chinese_scripts: list[str] = Field(
        description="Scripts `chinese_script` converts to (besides `none`, as the model writes).",
        examples=[["traditional"]],
    )
    default_chinese_script: str = Field(
        description="Script used when a request names none (WHISPER_DEFAULT_CHINESE_SCRIPT); `none`: as the model "
        "writes.",
        examples=["none"],
    )
    auth_required: bool = Field(description="Whether requests need an API key.", examples=[True])


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """The single-page web client."""
    return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get(
    "/v1/capabilities",
    response_model=Capabilities,
    tags=["health"],
    summary="Server capabilities",
    description="Features and limits of this server; no key needed (nothing secret in it).",
)
async def capabilities(request: Request, settings: SettingsDep) -> Capabilities:
    """Summaries on or off, defaults and limits."""
    return Capabilities(
        summaries=settings.llm_configured,
        default_model=settings.default_model,
        max_upload_bytes=settings.max_upload_bytes,
        chinese_scripts=[script.value for script in ChineseScript if script is not ChineseScript.none],
        default_chinese_script=settings.default_chinese_script,
        auth_required=await request.app.state.authenticator.required(),
    )
