"""The default data directory is one per user, wherever the command runs (not `./data`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings


@pytest.fixture(autouse=True)
def _no_data_dir_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WHISPER_DATA_DIR", raising=False)
    monkeypatch.delenv("WHISPER_MODEL_CACHE_DIR", raising=False)
    monkeypatch.delenv("WHISPER_DATABASE_URL", raising=False)


def test_xdg_data_home_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    expected = tmp_path / "xdg" / "whisper-service"
    assert settings.data_dir == expected
    assert settings.model_dir == expected / "models"
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{expected / 'whisper.db'}"


@pytest.mark.parametrize("xdg", [None, "", "relative/dir"])
def test_otherwise_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xdg: str | None) -> None:
    """Without a usable XDG_DATA_HOME (unset, empty or relative: the XDG spec ignores those), ~/.local/share."""
    if xdg is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", xdg)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".local" / "share" / "whisper-service"
    for cwd in (tmp_path, tmp_path / "elsewhere"):
        cwd.mkdir(exist_ok=True)
        monkeypatch.chdir(cwd)
        assert Settings().data_dir == expected  # the same directory from any working directory


def test_the_variable_still_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPER_DATA_DIR", str(tmp_path / "mine"))
    assert Settings().data_dir == tmp_path / "mine"


async def test_the_data_directory_is_its_owners_alone(tmp_path: Path) -> None:
    """It holds every tenant's transcripts and the cluster's webhook secret: other local users may not enter."""
    from app.db.engine import create_engine

    data_dir = tmp_path / "new" / "whisper-service"
    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'whisper.db'}")
    await engine.dispose()
    assert data_dir.stat().st_mode & 0o777 == 0o700
