"""The shared speech clips and how transcripts are scored against their references."""

from __future__ import annotations

import os
from pathlib import Path

import jiwer
from whisper_normalizer.english import EnglishTextNormalizer

AUDIO_DIR = Path(os.environ.get("WHISPER_TEST_AUDIO", Path(__file__).resolve().parents[2] / "shared" / "audio"))
ENGLISH_CLIPS = [
    "jfk.wav",
    "jfk.mp3",
    "jfk_video.mp4",
    "librivox_0870.wav",
    "librivox_0880.wav",
    "librivox_0890.wav",
    "cards_003.wav",
    "en_sonnet001.wav",
    "en_asterisk_demo-congrats.wav",
    "en_praatio_mary.wav",
    "long_en.flac",
]
_normalize = EnglishTextNormalizer()


def clip(name: str) -> Path:
    """Path of a clip in ../shared/audio; fails loudly if the folder is missing."""
    path = AUDIO_DIR / name
    assert path.exists(), f"missing test audio {path}; set WHISPER_TEST_AUDIO to the shared/audio folder"
    return path


def reference(name: str) -> str:
    """The reference transcript of a clip."""
    stem = name.rsplit(".", 1)[0].removesuffix("_video")
    return (AUDIO_DIR / f"{stem}.txt").read_text(encoding="utf-8")


def wer(ref: str, hyp: str) -> float:
    """Word error rate after Whisper's English normalization (case, punctuation, number words)."""
    return float(jiwer.wer(_normalize(ref), _normalize(hyp)))
