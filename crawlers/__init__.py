"""Fetching media from URLs: direct links (direct.py), pages through yt-dlp under the outbound policy (ytdlp.py,
guarded.py)."""
