"""The real faster-whisper engine on real speech, with the bundled models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from faster_whisper import decode_audio

from app.schemas.tasks import DecodeOptions, TaskType
from tests.audio import clip, reference, wer
from workers.engine import FasterWhisperEngine, TranscriptionInterrupted, TranscriptionRequest, use_batched
from workers.models import BASE_SHA256, ModelFilesCorrupt, _assemble_base, sha256_of

pytestmark = pytest.mark.model


def run(engine: FasterWhisperEngine, name: str, **kwargs: object) -> tuple[object, list[float]]:
    audio = decode_audio(str(clip(name)), sampling_rate=16_000)
    progress: list[float] = []
    request = TranscriptionRequest(
        task_id=None,
        model=str(kwargs.pop("model", "base")),
        task_type=TaskType(kwargs.pop("task_type", "transcribe")),
        language=kwargs.pop("language", None),  # type: ignore[arg-type]
        options=DecodeOptions.model_validate(kwargs),
    )
    transcript = engine.transcribe(
        audio, request, on_segment=lambda s: progress.append(s.end), should_stop=lambda: False
    )
    return transcript, progress


def test_bundled_base_is_assembled_and_verified(model_cache: Path, real_engine: FasterWhisperEngine) -> None:
    real_engine.pool.get("base")
    target = model_cache / "base"
    assert sha256_of(target / "model.bin") == BASE_SHA256
    assert {p.name for p in target.iterdir()} >= {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}


def test_a_corrupt_assembly_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workers.models.BASE_SHA256", "0" * 64)
    with pytest.raises(ModelFilesCorrupt, match="expected 0000"):
        _assemble_base(tmp_path)
    assert not (tmp_path / "base" / "model.bin").exists()


def test_english_with_word_timestamps(real_engine: FasterWhisperEngine) -> None:
    transcript, progress = run(real_engine, "jfk.wav", word_timestamps=True)
    assert transcript.language == "en" and transcript.language_probability > 0.5
    assert wer(reference("jfk.wav"), transcript.text) <= 0.25
    assert transcript.duration == pytest.approx(11.0)
    assert progress == sorted(progress) and progress[-1] <= 11.0
    previous = 0.0
    for segment in transcript.segments:
        assert segment.words, "word timestamps were asked for"
        for word in segment.words:
            assert previous <= word.start <= word.end <= transcript.duration
            assert segment.start <= word.start and word.end <= segment.end  # tidied: no stray milliseconds
            previous = word.end
            assert 0 <= word.probability <= 1
            previous = word.start


def test_long_audio_uses_the_batched_pipeline_and_stays_accurate(real_engine: FasterWhisperEngine) -> None:
    options = DecodeOptions()
    assert use_batched(options, duration=109.75, vad=True)
    assert not use_batched(DecodeOptions(condition_on_previous_text=True), duration=109.75, vad=True)
    assert not use_batched(options, duration=11.0, vad=False)
    transcript, _ = run(real_engine, "long_en.flac")
    assert wer(reference("long_en.flac"), transcript.text) <= 0.10


def test_translation_to_english(real_engine: FasterWhisperEngine) -> None:
    transcript, _ = run(real_engine, "es_asterisk_ss-noservice.wav", task_type="translate")
    assert transcript.language == "es"
    english = "The number you have dialed is out of service. Please check the number and try again."
    assert wer(english, transcript.text) <= 0.5, transcript.text
    assert "número" not in transcript.text.lower() and "numero" not in transcript.text.lower()


def test_tiny_en_is_bundled_too(real_engine: FasterWhisperEngine) -> None:
    transcript, _ = run(real_engine, "jfk.wav", model="tiny.en")
    assert wer(reference("jfk.wav"), transcript.text) <= 0.25


def test_stop_request_interrupts(real_engine: FasterWhisperEngine) -> None:
    audio = decode_audio(str(clip("en_sonnet001.wav")), sampling_rate=16_000)
    request = TranscriptionRequest(
        task_id=None, model="base", task_type=TaskType.transcribe, language="en", options=DecodeOptions()
    )
    seen: list[object] = []
    with pytest.raises(TranscriptionInterrupted):
        real_engine.transcribe(audio, request, on_segment=seen.append, should_stop=lambda: len(seen) >= 1)
    assert len(seen) == 1


def test_long_silence_around_speech_yields_no_text_in_it(real_engine: FasterWhisperEngine) -> None:
    """20 s of silence, the 11 s JFK clip, 20 s of silence: VAD (on by default past 30 s) keeps the silence empty."""
    speech = decode_audio(str(clip("jfk.wav")), sampling_rate=16_000)
    silence = np.zeros(20 * 16_000, dtype=np.float32)
    audio = np.concatenate([silence, speech, silence])
    request = TranscriptionRequest(
        task_id=None,
        model="base",
        task_type=TaskType.transcribe,
        language=None,
        options=DecodeOptions(word_timestamps=True),
    )
    transcript = real_engine.transcribe(audio, request, on_segment=lambda s: None, should_stop=lambda: False)
    assert wer(reference("jfk.wav"), transcript.text) <= 0.25
    words = [w for segment in transcript.segments for w in segment.words or []]
    assert words and all(w.start >= 19.5 and w.end <= 31.5 for w in words), [(w.start, w.end, w.word) for w in words]

    only_silence = np.zeros(45 * 16_000, dtype=np.float32)
    empty = real_engine.transcribe(only_silence, request, on_segment=lambda s: None, should_stop=lambda: False)
    assert empty.text == "" and empty.segments == []
