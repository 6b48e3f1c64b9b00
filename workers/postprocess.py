"""What happens to a transcript between the engine and the database: speaker labels, Chinese script."""

from __future__ import annotations

import numpy as np

from app.schemas.tasks import DecodeOptions
from app.schemas.transcript import Transcript
from app.services.chinese import convert_transcript
from workers.diarization import Diarizer, assign_speakers


def postprocess(transcript: Transcript, audio: np.ndarray, options: DecodeOptions, diarizer: Diarizer) -> Transcript:
    """Apply the task's speaker and script options (blocking: run it in a thread)."""
    if options.diarize:
        turns = diarizer.diarize(audio, min_speakers=options.min_speakers, max_speakers=options.max_speakers)
        transcript = assign_speakers(transcript, turns)
    if options.chinese_script is not None:
        transcript = convert_transcript(transcript, options.chinese_script)
    return transcript
