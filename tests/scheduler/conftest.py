"""Settings and a Celery app on a real broker and database, for scheduler tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from celery import Celery

from atelier.celery_app import create_app
from atelier.db import migrate
from atelier.settings import Settings

MakeRuntime = Callable[..., tuple[Settings, Celery]]


@pytest.fixture
def redis_runtime(tmp_path: Path, pg_url: str, redis_url: str) -> MakeRuntime:
    """Settings on PostgreSQL + Redis (a flushed logical DB) with the given overrides."""

    def make(**overrides: object) -> tuple[Settings, Celery]:
        values = {
            "database_url": pg_url,
            "broker_url": redis_url,
            "data_dir": tmp_path / "data",
            "requeue_grace_seconds": 30,
            "lease_seconds": 60,
            **overrides,
        }
        settings = Settings(**values)
        migrate(pg_url)
        return settings, create_app(settings)

    return make


@pytest.fixture
def embedded_runtime(tmp_path: Path) -> MakeRuntime:
    """Settings for the embedded default (SQLite + filesystem broker) in tmp_path."""

    def make(**overrides: object) -> tuple[Settings, Celery]:
        values = {
            "data_dir": tmp_path / "data",
            "broker_url": None,
            "database_url": None,
            "requeue_grace_seconds": 30,
            "lease_seconds": 60,
            **overrides,
        }
        settings = Settings(**values)
        migrate(settings.resolved_database_url)
        return settings, create_app(settings)

    return make
