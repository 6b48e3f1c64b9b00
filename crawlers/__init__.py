"""Fetching media from URLs: direct links now, platform pages through yt-dlp later (issue 5)."""
