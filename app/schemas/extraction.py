"""Options of an audio extraction."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.services.extraction import AudioFormat


class ExtractOptions(BaseModel):
    """The output's format and sample layout; every field is optional."""

    model_config = ConfigDict(extra="forbid")

    output_format: AudioFormat = Field(AudioFormat.wav, description="wav, flac, mp3 or opus.", examples=["wav"])
    sample_rate: int = Field(16000, ge=8000, le=48000, description="Samples per second.", examples=[16000])
    channels: int = Field(1, ge=1, le=2, description="1 (mono) or 2 (stereo).", examples=[1])
    bit_depth: int = Field(16, description="Bits per sample: 16, 24 or 32 (wav); 16 or 24 (flac).", examples=[16])
