"""whisper-service: self-hosted speech-to-text with a SQL-backed job queue."""
