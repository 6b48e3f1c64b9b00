"""Language codes and names: the default language, the `LANGUAGE` alias and request values."""

from __future__ import annotations

import logging

import pytest
from faster_whisper.tokenizer import _LANGUAGE_CODES
from pydantic import ValidationError

from app.languages import NAMES, language_code
from app.schemas.tasks import TaskCreate
from app.settings import Settings, describe_error


def test_every_model_language_has_a_name() -> None:
    assert set(NAMES) == set(_LANGUAGE_CODES)


@pytest.mark.parametrize(
    ("value", "code"),
    [("zh", "zh"), ("ZH", "zh"), ("Chinese", "zh"), ("french", "fr"), (" Mandarin ", "zh"), ("yue", "yue"),
     ("Cantonese", "yue"), ("haitian creole", "ht"), ("auto", None), ("", None)],
)  # fmt: skip
def test_codes_and_english_names(value: str, code: str | None) -> None:
    assert language_code(value) == code
    assert TaskCreate(language=value).language == code


@pytest.mark.parametrize("value", ["en_US:en", "C.UTF-8", "Klingon", "xx"])
def test_anything_else_is_not_a_language(value: str) -> None:
    with pytest.raises(ValueError, match="not a language"):
        language_code(value)
    with pytest.raises(ValidationError, match="not a language"):
        TaskCreate(language=value)


@pytest.mark.parametrize("variable", ["WHISPER_DEFAULT_LANGUAGE", "LANGUAGE"])
def test_the_default_language_takes_names(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "Chinese")
    assert Settings().default_language == "zh"


def test_whisper_default_language_wins_over_language(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGUAGE", "en_US:en")
    monkeypatch.setenv("WHISPER_DEFAULT_LANGUAGE", "French")
    assert Settings().default_language == "fr"


def test_an_invalid_default_language_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPER_DEFAULT_LANGUAGE", "Klingon")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "WHISPER_DEFAULT_LANGUAGE" in describe_error(info.value)


@pytest.mark.parametrize("locale", ["en_US:en", "de_DE.UTF-8", "C"])
def test_a_posix_language_list_is_ignored_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, locale: str
) -> None:
    monkeypatch.setenv("LANGUAGE", locale)
    with caplog.at_level(logging.WARNING):
        assert Settings().default_language is None
    assert any("LANGUAGE" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
