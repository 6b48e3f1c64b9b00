"""Worker processes: the claim loop, the model pool and the transcription engine."""
