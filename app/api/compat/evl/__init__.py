"""The API of Evil0ctal's "Whisper Service" (Fast-Powerful-Whisper-AI-Services-API), called evl here: its routes
under /api, translated onto this service's tasks, queue, subtitles, extraction and summaries.

Spec: ../shared/compat/evl.md. Task ids are the tasks' numbers; callbacks of tasks created here carry its task
object; its errors keep its shapes (envelope.py).
"""

from app.api.compat.evl import chatgpt, crawlers, workflows
from app.api.compat.evl.docs import ERROR_SCHEMA, TAG, TAG_DESCRIPTION
from app.api.compat.evl.tasks import router

__all__ = ["ERROR_SCHEMA", "TAG", "TAG_DESCRIPTION", "chatgpt", "crawlers", "router", "workflows"]
