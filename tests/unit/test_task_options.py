"""Task option parsing and model checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.errors import InvalidInput, UnknownModel
from app.schemas.tasks import Priority, TaskCreate, TaskType
from app.services.catalog import check_model, known_models


def test_form_style_values_are_parsed() -> None:
    task = TaskCreate.model_validate(
        {
            "temperature": "0,0.2,0.4",
            "clip_timestamps": "0,10.5",
            "vad_parameters": '{"threshold": 0.3, "min_silence_duration_ms": 500}',
            "word_timestamps": "true",
            "language": "FR",
            "priority": "high",
            "beam_size": "3",
        }
    )
    assert task.temperature == [0.0, 0.2, 0.4]
    assert task.clip_timestamps == [0.0, 10.5]
    assert task.vad_parameters is not None and task.vad_parameters.threshold == 0.3
    assert task.word_timestamps is True
    assert task.language == "fr"
    assert task.priority is Priority.high and task.priority.rank == 0
    assert task.decode_options() == {
        "temperature": [0.0, 0.2, 0.4],
        "clip_timestamps": [0.0, 10.5],
        "vad_parameters": {"threshold": 0.3, "min_silence_duration_ms": 500},
        "word_timestamps": True,
        "beam_size": 3,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("beam_size", 0),
        ("temperature", 1.5),
        ("temperature", "0,2"),
        ("language", "klingon"),
        ("priority", "urgent"),
        ("task_type", "summarize"),
        ("clip_timestamps", "10,5"),
        ("vad_parameters", "{not json"),
        ("vad_parameters", {"threshold": 0.5, "bogus": 1}),
        ("file_url", "file:///etc/passwd"),
        ("callback_url", "not a url"),
        ("unknown_option", 1),
    ],
)
def test_invalid_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as info:
        TaskCreate.model_validate({field: value})
    assert info.value.errors()[0]["loc"][0] == field


def test_model_checks() -> None:
    assert known_models()[:2] == ["base", "tiny.en"]
    assert "large-v3" in known_models()
    check_model(model="base", task_type=TaskType.translate, language="fr")
    check_model(model="/models/custom", task_type=TaskType.transcribe, language=None, extra=["/models/custom"])
    with pytest.raises(UnknownModel, match=r"base, tiny\.en"):
        check_model(model="gpt-4", task_type=TaskType.transcribe, language=None)
    with pytest.raises(InvalidInput, match="English-only"):
        check_model(model="tiny.en", task_type=TaskType.translate, language=None)
    with pytest.raises(InvalidInput, match="English-only"):
        check_model(model="tiny.en", task_type=TaskType.transcribe, language="fr")
