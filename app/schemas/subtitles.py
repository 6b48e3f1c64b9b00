"""Layout options of subtitle exports."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from app.services.subtitles import CueLayout

SIZES = ("max_line_width", "max_line_count", "max_words_per_cue", "max_cue_duration")


class SubtitleLayout(BaseModel):
    """How cues are cut; without a size SRT and WebVTT follow common practice (2 lines of 42 characters, 7 s)."""

    model_config = ConfigDict(allow_inf_nan=False)

    max_line_width: int | None = Field(
        None, ge=4, le=1000, description="Characters per line; words wrap, longer words are cut.", examples=[42]
    )
    max_line_count: int | None = Field(None, ge=1, le=10, description="Lines per cue.", examples=[2])
    max_words_per_cue: int | None = Field(None, ge=1, le=1000, description="Words per cue.", examples=[12])
    max_cue_duration: float | None = Field(
        None, ge=0.5, le=3600, description="Longest cue, in seconds (at least 0.5).", examples=[6.0]
    )
    highlight_words: bool = Field(
        False,
        description="Karaoke output: WebVTT timestamp tags, one SRT cue per word with the word underlined, "
        "enhanced LRC word times.",
        examples=[True],
    )
    segment_cues: bool = Field(
        False,
        description="One cue per segment, however long (SRT and WebVTT otherwise default to at most 2 lines of 42 "
        "characters, 16 for Chinese, Japanese and Korean, and 7 s). Not with the size options.",
        examples=[True],
    )

    @field_validator("segment_cues")
    @classmethod
    def _alone(cls, value: bool, info: ValidationInfo) -> bool:
        given = [name for name in SIZES if info.data.get(name) is not None]
        if value and given:
            raise ValueError(f"segment_cues cannot be combined with {', '.join(given)}")
        return value

    def layout(self) -> CueLayout:
        """The renderer's options."""
        return CueLayout(**self.model_dump())
