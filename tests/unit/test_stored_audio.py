"""Reading a task's stored audio back fails in our own words, never with PyAV's."""

from __future__ import annotations

import pytest

from app.errors import UnreadableMedia
from app.services import media


@pytest.mark.parametrize("data", [b"", b"not ogg at all" * 10])
def test_missing_or_damaged_stored_audio_is_our_error(data: bytes) -> None:
    with pytest.raises(UnreadableMedia, match="create the task again"):
        media.decode_pcm(data)
