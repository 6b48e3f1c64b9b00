"""The real faster-whisper engine on real speech, with the bundled models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faster_whisper import decode_audio
from faster_whisper.tokenizer import Tokenizer

from app.errors import ModelFilesCorrupt, TranscriptionInterrupted
from app.schemas.tasks import DecodeOptions, TaskType
from tests.audio import clip, reference, wer
from workers.engine import FasterWhisperEngine, TranscriptionRequest, use_batched
from workers.models import BASE_SHA256, _assemble_base, sha256_of


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


@pytest.mark.model
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


@pytest.mark.model
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
            assert 0 <= word.probability <= 1
            previous = word.end  # the next word starts no earlier: words never overlap


@pytest.mark.model
def test_long_audio_uses_the_batched_pipeline_and_stays_accurate(real_engine: FasterWhisperEngine) -> None:
    options = DecodeOptions()
    assert use_batched(options, duration=109.75, vad=True)
    assert not use_batched(DecodeOptions(condition_on_previous_text=True), duration=109.75, vad=True)
    assert not use_batched(options, duration=11.0, vad=False)
    transcript, _ = run(real_engine, "long_en.flac")
    assert wer(reference("long_en.flac"), transcript.text) <= 0.10
    lengths = [s.end - s.start for s in transcript.segments]  # cut by word timings, which were not asked for
    assert sum(lengths) / len(lengths) < 8 and all(s.words is None for s in transcript.segments)


@pytest.mark.model
def test_batched_segments_are_sentences_with_their_own_words_and_tokens(real_engine: FasterWhisperEngine) -> None:
    """The 53 s sonnet comes back from the batched pipeline as two 26 s chunks; cut at sentence ends and pauses."""
    transcript, progress = run(real_engine, "en_sonnet001.wav", word_timestamps=True)
    assert wer(reference("en_sonnet001.wav"), transcript.text) <= 0.15  # 0.13 before and after the cut
    segments = transcript.segments
    lengths = [s.end - s.start for s in segments]
    assert len(segments) >= 6 and sum(lengths) / len(lengths) < 8 and max(lengths) <= 10, lengths
    assert [s.id for s in segments] == list(range(len(segments))) and progress == [s.end for s in segments]
    assert transcript.text == "".join(s.text for s in segments).strip()
    decode = Tokenizer(real_engine.pool.get("base").hf_tokenizer, multilingual=False).decode
    for segment in segments:
        assert segment.words and segment.text == "".join(w.word for w in segment.words)
        assert (segment.start, segment.end) == (segment.words[0].start, segment.words[-1].end)
        assert segment.tokens and decode(segment.tokens) == segment.text
    assert any(s.text.endswith("memory.") for s in segments)  # a sentence end inside a chunk


@pytest.mark.model
def test_translation_to_english(real_engine: FasterWhisperEngine) -> None:
    transcript, _ = run(real_engine, "es_asterisk_ss-noservice.wav", task_type="translate")
    assert transcript.language == "es"
    english = "The number you have dialed is out of service. Please check the number and try again."
    assert wer(english, transcript.text) <= 0.5, transcript.text
    assert "número" not in transcript.text.lower() and "numero" not in transcript.text.lower()


@pytest.mark.model
def test_tiny_en_is_bundled_too(real_engine: FasterWhisperEngine) -> None:
    transcript, _ = run(real_engine, "jfk.wav", model="tiny.en")
    assert wer(reference("jfk.wav"), transcript.text) <= 0.25


@pytest.mark.model
def test_stop_request_interrupts(real_engine: FasterWhisperEngine) -> None:
    audio = decode_audio(str(clip("en_sonnet001.wav")), sampling_rate=16_000)
    request = TranscriptionRequest(
        task_id=None, model="base", task_type=TaskType.transcribe, language="en", options=DecodeOptions()
    )
    seen: list[object] = []
    with pytest.raises(TranscriptionInterrupted):
        real_engine.transcribe(audio, request, on_segment=seen.append, should_stop=lambda: len(seen) >= 1)
    assert len(seen) == 1


class CountingGenerator:
    """Stands in for the CTranslate2 model of a WhisperModel and counts the generate calls that ran to the end."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.finished = 0

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        result = self.inner.generate(*args, **kwargs)
        self.finished += 1
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.model
def test_a_stop_request_ends_a_temperature_fallback(real_engine: FasterWhisperEngine) -> None:
    """Every attempt falls short of a log-probability threshold of 0, so the one window is decoded at each of the 6
    temperatures before any segment exists; a stop asked for during the first must end it after that one."""
    audio = decode_audio(str(clip("jfk.wav")), sampling_rate=16_000)
    options = DecodeOptions(temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0], log_prob_threshold=0.0)
    request = TranscriptionRequest(
        task_id=None, model="base", task_type=TaskType.transcribe, language="en", options=options
    )
    sequential = FasterWhisperEngine(real_engine.pool)  # batching decodes at the first temperature only
    with real_engine.pool.use("base") as model:
        counting = CountingGenerator(model.model)
        model.model = counting
        try:
            with pytest.raises(TranscriptionInterrupted):
                sequential.transcribe(
                    audio, request, on_segment=lambda _: None, should_stop=lambda: counting.finished >= 1
                )
        finally:
            model.model = counting.inner
    assert counting.finished == 1


@pytest.mark.model
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
