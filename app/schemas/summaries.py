"""LLM summaries of a task's transcript."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class SummaryCreate(BaseModel):
    """Options of a summary; everything is optional."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None, max_length=255, description="LLM model name; default WHISPER_LLM_MODEL.", examples=["gpt-4o-mini"]
    )
    prompt: str | None = Field(
        None,
        max_length=4000,
        description="Instructions replacing the default ones (overview, key points, decisions, action items).",
        examples=["List the decisions made, one per line."],
    )
    output_language: str | None = Field(
        None,
        max_length=64,
        description="Language of the summary (a name or code); default: the transcript's language.",
        examples=["English"],
    )


class SummaryUsage(BaseModel):
    """Tokens the LLM reported, over every call."""

    prompt_tokens: int | None = Field(description="Input tokens.", examples=[1830])
    completion_tokens: int | None = Field(description="Output tokens.", examples=[212])


class SummaryDetail(BaseModel):
    """A summary and how it was made."""

    id: str = Field(description="Summary id.", examples=["1d7e5a0c-9b1f-4a51-8f0e-2b6a6c0e7c11"])
    task_id: str = Field(description="The summarised task.")
    status: str = Field(description="running, completed or failed.", examples=["completed"])
    model: str = Field(description="LLM model used.", examples=["gpt-4o-mini"])
    prompt: str | None = Field(description="Custom instructions, if any.")
    output_language: str | None = Field(description="Requested language, if any.")
    text: str | None = Field(description="The summary, once completed.")
    chunks: int = Field(description="Parts the transcript was split into to fit the model's context.", examples=[1])
    llm_calls: int = Field(description="Chat completions made (parts, combining rounds, final).", examples=[1])
    usage: SummaryUsage
    error: str | None = Field(description="Why it failed.")
    created_at: datetime
    finished_at: datetime | None


class SummaryList(BaseModel):
    """A task's summaries, newest first."""

    items: list[SummaryDetail]
