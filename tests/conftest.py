"""Fixtures every test folder may use: test data, databases, storage and settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from atelier import settings as settings_module
from tests.support import seaweed as seaweed_support
from tests.support import services

TEST_DATA = Path(__file__).resolve().parent / "data"

# pytest-xdist starts its workers with COLUMNS=80 and LINES=24, which a serial run (a shell does
# not export them) lacks: the CLI's consoles, made at import, would then fold every table to 80
# columns in one mode and not in the other.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


@pytest.fixture(scope="session")
def test_data() -> Path:
    """Real photos, faces, paintings and a film clip: tests/data/SOURCES.md says what and whence."""
    return TEST_DATA


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own (the server at 127.0.0.1:5432 must be up)."""
    if not services.postgres_available():
        pytest.fail("PostgreSQL is not reachable at 127.0.0.1:5432; `make test` starts it")
    with services.fresh_postgres_database() as url:
        yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A flushed Redis logical database (the server at 127.0.0.1:6379 must be up)."""
    if not services.redis_available():
        pytest.fail("Redis is not reachable at 127.0.0.1:6379; `make test` starts it")
    with services.fresh_redis_db() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'atelier.sqlite3'}"


@pytest.fixture
def atelier_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """ATELIER_* variables for an isolated embedded setup in tmp_path, applied to this process
    too (settings are re-read)."""
    env = {
        "ATELIER_DATA_DIR": str(tmp_path / "data"),
        "ATELIER_VGG_WEIGHTS": "none",
        "ATELIER_HEARTBEAT_SECONDS": "0.5",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ATELIER_BROKER_URL", raising=False)
    monkeypatch.delenv("ATELIER_DATABASE_URL", raising=False)
    settings_module.get_settings.cache_clear()
    yield env
    settings_module.get_settings.cache_clear()


@pytest.fixture(scope="session")
def seaweed() -> seaweed_support.SeaweedServer:
    """The suite's SeaweedFS object store (S3 on 127.0.0.1:8333), started when it is down."""
    return seaweed_support.ensure_shared()


@pytest.fixture
def s3_env(
    seaweed: seaweed_support.SeaweedServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """ATELIER_STORAGE_URL with a prefix of this test's own in the shared bucket, and the AWS
    variables that reach it; applied to this process too. The prefix is emptied afterwards."""
    env = {**seaweed.env, "ATELIER_STORAGE_URL": seaweed_support.fresh_prefix()}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings_module.get_settings.cache_clear()
    yield env
    settings_module.get_settings.cache_clear()
    seaweed_support.remove_prefix(seaweed, env["ATELIER_STORAGE_URL"])


@pytest.fixture(scope="session")
def squares(tmp_path_factory: pytest.TempPathFactory, test_data: Path) -> list[Path]:
    """32 px square crops of the sample images: one shape, so a worker compiles its step once
    for the whole batch instead of once per aspect ratio."""
    folder = tmp_path_factory.mktemp("squares")
    sources = [
        *sorted((test_data / "content").glob("*.jpg")),
        *sorted((test_data / "faces").glob("*.jpg")),
        *sorted((test_data / "style").glob("*.*")),
    ]
    out = []
    for source in sources:
        with Image.open(source) as image:
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            square = image.convert("RGB").crop((left, top, left + side, top + side))
            target = folder / f"{source.stem}.png"
            square.resize((32, 32)).save(target)
            out.append(target)
    return out
