"""The task object of the evl API ("Whisper Service", Evil0ctal/Fast-Powerful-Whisper-AI-Services-API): a stored
task as that service's routes and callbacks show it (id = the task's number, its status names, its result shape)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from app.schemas.tasks import DecodeOptions, TaskStatus, VadParameters
from app.schemas.transcript import Segment, Transcript

if TYPE_CHECKING:
    from app.db.models import Task

ENGINE_NAME = "faster_whisper"
RESULT_PATH = "/api/whisper/tasks/result"
VAD_DEFAULT_SECONDS = 30.0
"""Audio longer than this is decoded behind Silero VAD unless the task says otherwise (as the worker does)."""
STATUS_NAMES = {
    TaskStatus.queued: "queued",
    TaskStatus.running: "processing",
    TaskStatus.completed: "completed",
    TaskStatus.failed: "failed",
    TaskStatus.cancelled: "failed",  # the evl API has no cancelled state
}
STATUSES_OF = {
    "queued": (TaskStatus.queued,),
    "processing": (TaskStatus.running,),
    "completed": (TaskStatus.completed,),
    "failed": (TaskStatus.failed, TaskStatus.cancelled),
}
CANCELLED_MESSAGE = "The task was cancelled."


@dataclass(frozen=True)
class CallbackRecord:
    """The last answer the task's callback receiver gave."""

    status_code: int | None
    message: str | None
    time: datetime


def local_time(when: datetime | None) -> str | None:
    """ISO 8601 in the server's local time without a zone, as the evl API writes times."""
    return when.astimezone().replace(tzinfo=None).isoformat() if when else None


def decode_options(options: dict[str, Any], language: str | None) -> dict[str, Any]:
    """The evl `decode_options` of a task: the Whisper options it runs with, under that API's names."""
    used = DecodeOptions.model_validate(options)
    return {
        "language": language,
        "temperature": used.temperature,
        "compression_ratio_threshold": used.compression_ratio_threshold,
        "no_speech_threshold": used.no_speech_threshold,
        "condition_on_previous_text": used.condition_on_previous_text,
        "initial_prompt": used.initial_prompt or "",
        "word_timestamps": used.word_timestamps,
        "prepend_punctuations": used.prepend_punctuations,
        "append_punctuations": used.append_punctuations,
        "clip_timestamps": used.clip_timestamps or "0",
        "hallucination_silence_threshold": used.hallucination_silence_threshold,
    }


def _transcription_options(used: DecodeOptions) -> dict[str, Any]:
    """faster-whisper's TranscriptionOptions as the task ran them (fixed ones at faster-whisper's defaults)."""
    temperatures = used.temperature if isinstance(used.temperature, list) else [used.temperature]
    return {
        "beam_size": used.beam_size,
        "best_of": used.best_of,
        "patience": used.patience,
        "length_penalty": 1,
        "repetition_penalty": 1,
        "no_repeat_ngram_size": 0,
        "log_prob_threshold": used.log_prob_threshold,
        "no_speech_threshold": used.no_speech_threshold,
        "compression_ratio_threshold": used.compression_ratio_threshold,
        "condition_on_previous_text": used.condition_on_previous_text,
        "prompt_reset_on_temperature": 0.5,
        "temperatures": temperatures,
        "initial_prompt": used.initial_prompt,
        "prefix": None,
        "suppress_blank": True,
        "suppress_tokens": [-1],
        "without_timestamps": False,
        "max_initial_timestamp": 1.0,
        "word_timestamps": used.word_timestamps,
        "prepend_punctuations": used.prepend_punctuations,
        "append_punctuations": used.append_punctuations,
        "max_new_tokens": None,
        "clip_timestamps": used.clip_timestamps or "0",
        "hallucination_silence_threshold": used.hallucination_silence_threshold,
        "hotwords": used.hotwords,
    }


def _segment(segment: Segment, first_temperature: float) -> dict[str, Any]:
    """A segment as faster-whisper's Segment dict (ids from 1)."""
    words = (
        [{"start": w.start, "end": w.end, "word": w.word, "probability": w.probability} for w in segment.words]
        if segment.words
        else None
    )
    return {
        "id": segment.id + 1,
        "seek": segment.seek or 0,
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "tokens": segment.tokens or [],
        "temperature": segment.temperature if segment.temperature is not None else first_temperature,
        "avg_logprob": segment.avg_logprob,
        "compression_ratio": segment.compression_ratio,
        "no_speech_prob": segment.no_speech_prob,
        "words": words,
    }


def result_object(transcript: Transcript, options: dict[str, Any]) -> dict[str, Any]:
    """`{text, segments, info}`: segment texts joined with a space (as the evl API joins them), faster-whisper's
    segment and info fields."""
    used = DecodeOptions.model_validate(options)
    first = used.temperature[0] if isinstance(used.temperature, list) else used.temperature
    vad = used.vad_filter if used.vad_filter is not None else transcript.duration > VAD_DEFAULT_SECONDS
    return {
        "text": " ".join(s.text for s in transcript.segments).strip(),
        "segments": [_segment(s, first) for s in transcript.segments],
        "info": {
            "language": transcript.language,
            "language_probability": transcript.language_probability,
            "duration": transcript.duration,
            "duration_after_vad": transcript.duration,
            "all_language_probs": None,
            "transcription_options": _transcription_options(used),
            "vad_options": (used.vad_parameters or VadParameters()).model_dump() if vad else None,
        },
    }


def task_object(
    task: Task, transcript: Transcript | None, *, base_url: str, callback: CallbackRecord | None = None
) -> dict[str, Any]:
    """The evl task object of a stored task; `base_url` (scheme and host) builds `output_url` unless the task was
    created through the evl API, whose own base is kept with it."""
    meta = (task.compat_meta or {}).get("evl", {})
    status = TaskStatus(task.status)
    finished = task.finished_at or task.started_at or task.created_at
    language = task.language if status is TaskStatus.completed else None
    error = CANCELLED_MESSAGE if status is TaskStatus.cancelled else task.error_message
    if error and task.error_type and status is TaskStatus.failed:
        error = f"{task.error_type}: {error}"
    base = str(meta.get("base_url") or base_url).rstrip("/")
    requested = None if status is TaskStatus.completed else task.language
    return {
        "id": task.number,
        "status": STATUS_NAMES[status],
        "callback_url": task.callback_url or "",
        "callback_status_code": callback.status_code if callback else None,
        "callback_message": callback.message if callback else None,
        "callback_time": local_time(callback.time) if callback else None,
        "priority": ("high", "normal", "low")[task.priority],
        "engine_name": ENGINE_NAME,
        "task_type": task.task_type,
        "created_at": local_time(task.created_at),
        "updated_at": local_time(max(task.created_at, finished)),
        "task_processing_time": task.processing_seconds,
        "file_path": None,  # media lives in the database, not in a server path
        "file_url": task.source_url,
        "file_name": task.filename,
        "file_size_bytes": meta.get("file_size_bytes", task.media_bytes),
        "file_duration": task.media_duration,
        "language": language,
        "platform": meta.get("platform", (task.source_meta or {}).get("platform") or ""),
        "decode_options": meta.get("decode_options") or decode_options(task.options, requested),
        "error_message": error,
        "output_url": f"{base}{RESULT_PATH}?task_id={task.number}",
        "result": result_object(transcript, task.options) if transcript is not None else None,
    }
