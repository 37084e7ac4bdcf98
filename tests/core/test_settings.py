"""Settings come from ATELIER_* variables and .env, with server-less defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from atelier.settings import Settings


def test_defaults_are_embedded_sqlite_and_filesystem_broker(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = Settings(data_dir=tmp_path / "d")
    assert s.embedded
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'd' / 'atelier.sqlite3'}"
    assert s.resolved_broker_url.startswith("filesystem://")
    assert s.resolved_storage_dir == tmp_path / "d" / "storage"
    assert s.vgg_weights == "imagenet"


def test_environment_variables_are_read(monkeypatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ATELIER_BROKER_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("ATELIER_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("ATELIER_VGG_WEIGHTS", "/models/vgg19.h5")
    monkeypatch.setenv("ATELIER_MAX_PIXELS", "1000")
    monkeypatch.setenv("ATELIER_VISIBILITY_TIMEOUT", "7200")
    s = Settings()
    assert not s.embedded
    assert s.resolved_result_backend == "redis://127.0.0.1:6379/3"
    assert s.resolved_database_url == "postgresql+psycopg://u@h/db"
    assert s.vgg_weights == "/models/vgg19.h5"
    assert s.max_pixels == 1000
    assert s.visibility_timeout == 7200


def test_dotenv_file_is_read(monkeypatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ATELIER_API_TOKEN=s3cret\nATELIER_MAX_BATCH=8\n")
    s = Settings()
    assert s.api_token == "s3cret"
    assert s.max_batch == 8


@pytest.mark.parametrize(
    "key,value",
    [("ATELIER_MAX_PIXELS", "-1"), ("ATELIER_MAX_BATCH", "0"), ("ATELIER_LEASE_SECONDS", "x")],
)
def test_bad_values_are_refused(monkeypatch, tmp_path: Path, key: str, value: str):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        Settings()
