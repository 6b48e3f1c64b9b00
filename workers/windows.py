"""One task's audio as Whisper windows for the batch scheduler, and decoding a batch of windows with faster-whisper.

A task is planned in its own thread: split into VAD chunks of at most 30 s (audio under 30 s is one window unless
VAD was asked for), mel features per window, language detected over the task's own windows, prompt built with its
task (transcribe/translate), language, initial prompt and hotwords. Windows of different tasks share a batch when
they use the same model and the same `Generation` options; language, task and prompt may differ per window.

This follows faster-whisper's BatchedInferencePipeline (one temperature, no conditioning on previous text), with
word timings always computed: they place segment boundaries (app/services/resegment.py) and are dropped afterwards
when the request did not ask for them.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from math import ceil
from typing import Any

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import Segment as FWSegment
from faster_whisper.transcribe import Word as FWWord
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens, restore_speech_timestamps
from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

from app.errors import LanguageNotInModel
from app.schemas.tasks import DecodeOptions
from app.services.media import SAMPLE_RATE

WINDOW_SECONDS = 30
VAD_MIN_SILENCE_MS = 160
"""faster-whisper's batched pipeline default: short pauses split chunks, so that chunks pack well into windows."""


@dataclass(frozen=True)
class Generation:
    """The options CTranslate2 needs equal for every item of one `generate` call."""

    beam_size: int
    patience: float
    temperature: float
    max_length: int
    suppress_tokens: tuple[int, ...]
    suppress_blank: bool = True
    length_penalty: float = 1.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0


@dataclass(eq=False)
class Window:
    """One window of one task: up to 30 s of its speech, as features, with its own prompt."""

    model: WhisperModel
    generation: Generation
    features: np.ndarray
    task: str
    language: str | None
    """None: detected in the batch, from this window's encoder output (a task of one window)."""
    previous_tokens: list[int]
    hotwords: str | None
    offset: float
    """Where the window starts in the task's (VAD-joined) audio, in seconds."""
    duration: float
    prepend_punctuations: str
    append_punctuations: str
    no_speech_threshold: float | None = None
    log_prob_threshold: float | None = None
    compression_ratio_threshold: float | None = None

    def is_silence(self, segments: list[dict[str, Any]]) -> bool:
        """Whisper's test for a window without speech (it thinks so, and its text is unlikely or repeats itself): on
        pure silence the model otherwise writes repeated filler, and batched decoding has no temperature fallback."""
        if not segments or self.no_speech_threshold is None:
            return False
        first = segments[0]
        unlikely = self.log_prob_threshold is not None and first["avg_logprob"] < self.log_prob_threshold
        repeats = self.compression_ratio_threshold is not None and any(
            segment["compression_ratio"] > self.compression_ratio_threshold for segment in segments
        )
        return bool(first["no_speech_prob"] > self.no_speech_threshold and (unlikely or repeats))


@dataclass
class Decoded:
    """One window's segment dicts (words included; times in the task's VAD-joined audio) and its language."""

    segments: list[dict[str, Any]]
    language: str
    language_probability: float


@dataclass
class Plan:
    """A task's windows and what was learnt planning them."""

    windows: list[Window]
    language: str | None
    """None: each window detects its own (a task of one window, detected in its batch)."""
    language_probability: float
    speech_chunks: list[dict[str, int]] | None
    """VAD's speech regions in samples, to map window times back onto the audio; None without VAD."""

    @property
    def group(self) -> Hashable:
        """What a window must share with another to be decoded in the same batch."""
        return (id(self.windows[0].model), self.windows[0].generation) if self.windows else None  # nothing to batch


def plan(
    model: WhisperModel, audio: np.ndarray, *, options: DecodeOptions, language: str | None, task: str, vad: bool
) -> Plan:
    """Split the task's audio into windows and prepare each one (features, language, prompt)."""
    speech_chunks: list[dict[str, int]] | None = None
    if vad:
        parameters = options.vad_parameters.model_dump() if options.vad_parameters else {}
        parameters.setdefault("min_silence_duration_ms", VAD_MIN_SILENCE_MS)
        parameters["max_speech_duration_s"] = WINDOW_SECONDS  # no chunk may exceed one window
        speech_chunks = get_speech_timestamps(audio, VadOptions(**parameters))
        chunks, metadata = collect_chunks(audio, speech_chunks, max_duration=WINDOW_SECONDS)
        if not speech_chunks:
            chunks, metadata = [], []
    else:
        chunks = [audio]
        metadata = [{"offset": 0.0, "duration": len(audio) / SAMPLE_RATE}]
    features = [model.feature_extractor(chunk)[..., :-1] for chunk in chunks]
    if language is not None and model.hf_tokenizer.token_to_id(f"<|{language}|>") is None:
        # A language the tokenizer lists but this model lacks (yue before large-v3): its prompt would be malformed.
        raise LanguageNotInModel(
            f"The model has no token for language {language!r}: leave language empty to detect it, or use a "
            "model that knows it (Cantonese, yue, needs large-v3)."
        )
    detected, probability = _language(model, features, language)
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task=task, language=detected or "en")
    previous = tokenizer.encode(" " + options.initial_prompt.strip()) if options.initial_prompt else []
    prompt = model.get_prompt(tokenizer, previous_tokens=previous, without_timestamps=True, hotwords=options.hotwords)
    if len(prompt) > model.max_length // 2 and previous:
        # faster-whisper keeps the prompt's text and hotwords each under half the model's length; together they
        # could leave no room for the transcript: the prompt's oldest words go first, as a long prompt's do.
        previous = previous[min(len(previous), len(prompt) - model.max_length // 2) :]
    temperatures = options.temperature if isinstance(options.temperature, list) else [options.temperature]
    generation = Generation(
        beam_size=options.beam_size,
        patience=options.patience,
        temperature=temperatures[0],
        max_length=model.max_length,
        suppress_tokens=tuple(get_suppressed_tokens(tokenizer, [-1])),
    )
    windows = [
        Window(
            model=model,
            generation=generation,
            features=pad_or_trim(feature),
            task=task,
            language=detected,
            previous_tokens=previous,
            hotwords=options.hotwords,
            offset=float(meta["offset"]),
            duration=float(meta["duration"]),
            prepend_punctuations=options.prepend_punctuations,
            append_punctuations=options.append_punctuations,
            no_speech_threshold=options.no_speech_threshold,
            log_prob_threshold=options.log_prob_threshold,
            compression_ratio_threshold=options.compression_ratio_threshold,
        )
        for feature, meta in zip(features, metadata, strict=True)
        if meta["duration"] > 0
    ]
    return Plan(windows=windows, language=detected, language_probability=probability, speech_chunks=speech_chunks)


def _language(model: WhisperModel, features: list[np.ndarray], language: str | None) -> tuple[str | None, float]:
    """The requested language; else, for audio of several windows, the one detected over them (as the batched
    pipeline does); else None: a single window detects it in its batch, from the encoder output it needs anyway."""
    if not model.model.is_multilingual:
        return "en", 1.0
    if language is not None:
        return language, 1.0
    if len(features) <= 1:
        return None, 0.0
    dummy = np.full((model.model.n_mels, 1), -1.5, dtype="float32")  # stands in for no speech at all
    detected, probability, _ = model.detect_language(features=np.concatenate([*features, dummy], axis=1))
    return detected, float(probability)


def decode(windows: Sequence[Window]) -> list[Decoded]:
    """Decode windows that share a model and `Generation` in one forward pass."""
    model = windows[0].model
    generation = windows[0].generation
    encoder_output = model.encode(np.stack([window.features for window in windows]))
    languages = _languages(model, windows, encoder_output)
    tokenizers = [
        Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task=window.task, language=language)
        for window, (language, _) in zip(windows, languages, strict=True)
    ]
    prompts = [
        model.get_prompt(tokenizer, window.previous_tokens, without_timestamps=True, hotwords=window.hotwords)
        for window, tokenizer in zip(windows, tokenizers, strict=True)
    ]
    results = model.model.generate(
        encoder_output,
        prompts,
        beam_size=generation.beam_size,
        patience=generation.patience,
        length_penalty=generation.length_penalty,
        max_length=generation.max_length,
        suppress_blank=generation.suppress_blank,
        suppress_tokens=list(generation.suppress_tokens),
        return_scores=True,
        return_no_speech_prob=True,
        sampling_temperature=generation.temperature,
        repetition_penalty=generation.repetition_penalty,
        no_repeat_ngram_size=generation.no_repeat_ngram_size,
    )
    sizes = [int(ceil(window.duration) * model.frames_per_second) for window in windows]
    outputs = [
        _segments(model, window, tokenizer, result, size)
        for window, tokenizer, result, size in zip(windows, tokenizers, results, sizes, strict=True)
    ]
    outputs = [[] if window.is_silence(output) else output for window, output in zip(windows, outputs, strict=True)]
    _add_words(model, windows, tokenizers, outputs, encoder_output, sizes)
    return [
        Decoded(segments=output, language=language, language_probability=probability)
        for output, (language, probability) in zip(outputs, languages, strict=True)
    ]


def _languages(model: WhisperModel, windows: Sequence[Window], encoder_output: Any) -> list[tuple[str, float]]:
    """Each window's language: its task's, or detected from its own encoder output."""
    if all(window.language is not None for window in windows):
        return [(window.language, 1.0) for window in windows]  # type: ignore[misc]  # checked just above
    detected = model.model.detect_language(encoder_output)
    return [
        (window.language, 1.0) if window.language is not None else (ranked[0][0][2:-2], float(ranked[0][1]))
        for window, ranked in zip(windows, detected, strict=True)
    ]


def _segments(
    model: WhisperModel, window: Window, tokenizer: Tokenizer, result: Any, size: int
) -> list[dict[str, Any]]:
    tokens = result.sequences_ids[0]
    cumulative = result.scores[0] * (len(tokens) ** window.generation.length_penalty)
    pieces, _, _ = model._split_segments_by_timestamps(
        tokenizer=tokenizer,
        tokens=tokens,
        time_offset=window.offset,
        segment_size=size,
        segment_duration=window.duration,
        seek=0,
    )
    return [
        {
            "text": (text := tokenizer.decode(piece["tokens"])),
            "avg_logprob": cumulative / (len(tokens) + 1),
            "no_speech_prob": result.no_speech_prob,
            "tokens": piece["tokens"],
            "start": piece["start"],
            "end": piece["end"],
            "compression_ratio": get_compression_ratio(text),
            "seek": int(window.offset * model.frames_per_second),
            "temperature": window.generation.temperature,
        }
        for piece in pieces
    ]


def _add_words(
    model: WhisperModel,
    windows: Sequence[Window],
    tokenizers: list[Tokenizer],
    outputs: list[list[dict[str, Any]]],
    encoder_output: ctranslate2.StorageView,
    sizes: list[int],
) -> None:
    """Word timings by cross-attention alignment, one call per (language, task, punctuation) in the batch (the
    alignment's start sequence names the language and task), each over its own windows' rows of the encoder output."""
    by_kind: dict[tuple[tuple[int, ...], str, str], list[int]] = {}
    for index, (window, tokenizer) in enumerate(zip(windows, tokenizers, strict=True)):
        if not outputs[index]:
            continue  # silence: no words to place
        kind = (tuple(tokenizer.sot_sequence), window.prepend_punctuations, window.append_punctuations)
        by_kind.setdefault(kind, []).append(index)
    for members in by_kind.values():
        first = windows[members[0]]
        model.add_word_timestamps(
            [outputs[index] for index in members],
            tokenizers[members[0]],
            encoder_output if len(members) == len(windows) else _rows(encoder_output, members),
            [sizes[index] for index in members],
            first.prepend_punctuations,
            first.append_punctuations,
            0.0,
        )


def _rows(encoder_output: ctranslate2.StorageView, indices: list[int]) -> ctranslate2.StorageView:
    """Some batch items' encoder output (a host copy; CTranslate2 moves it back to the model's device)."""
    host = encoder_output if encoder_output.device == "cpu" else encoder_output.to_device(ctranslate2.Device.cpu)
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.asarray(host)[indices]))


def to_segments(plan: Plan, output: list[dict[str, Any]]) -> list[FWSegment]:
    """One window's segments as faster-whisper's, in audio time (VAD gaps put back)."""
    segments = [
        FWSegment(
            id=0,
            seek=raw["seek"],
            start=round(raw["start"], 3),
            end=round(raw["end"], 3),
            text=raw["text"],
            tokens=raw["tokens"],
            avg_logprob=raw["avg_logprob"],
            compression_ratio=raw["compression_ratio"],
            no_speech_prob=raw["no_speech_prob"],
            words=[FWWord(**word) for word in raw.get("words", [])],
            temperature=raw["temperature"],
        )
        for raw in output
    ]
    if plan.speech_chunks is None:
        return segments
    return list(restore_speech_timestamps(segments, plan.speech_chunks, SAMPLE_RATE))
