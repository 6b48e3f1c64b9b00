"""Layout options of subtitle exports."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.services.subtitles import CueLayout


class SubtitleLayout(BaseModel):
    """How cues are cut; without any option every segment is one cue."""

    max_line_width: int | None = Field(
        None, ge=4, le=1000, description="Characters per line; words wrap, longer words are cut.", examples=[42]
    )
    max_line_count: int | None = Field(None, ge=1, le=10, description="Lines per cue.", examples=[2])
    max_words_per_cue: int | None = Field(None, ge=1, le=1000, description="Words per cue.", examples=[12])
    max_cue_duration: float | None = Field(None, gt=0, le=3600, description="Longest cue, in seconds.", examples=[6.0])
    highlight_words: bool = Field(
        False,
        description="Karaoke output: WebVTT timestamp tags, one SRT cue per word with the word underlined, "
        "enhanced LRC word times.",
        examples=[True],
    )

    def layout(self) -> CueLayout:
        """The renderer's options."""
        return CueLayout(**self.model_dump())
