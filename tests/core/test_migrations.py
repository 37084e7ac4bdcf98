"""Migrations build the same schema on SQLite and PostgreSQL, and re-running them is harmless."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import inspect

from atelier.db import current_revision, get_engine, migrate
from tests.support.procs import REPO

TABLES = {"assets", "batches", "jobs", "loss_history", "frame_stats", "inbox_files"}


def _head() -> str:
    from alembic.script import ScriptDirectory

    from atelier.db import _alembic_config

    return ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrate_creates_schema_and_is_idempotent(backend: str, request: pytest.FixtureRequest):
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    assert current_revision(url) is None
    migrate(url)
    migrate(url)
    assert current_revision(url) == _head()
    inspector = inspect(get_engine(url))
    assert set(inspector.get_table_names()) >= TABLES
    uniques = {u["name"] for u in inspector.get_unique_constraints("loss_history")}
    assert "uq_loss_job_iteration" in uniques


def test_concurrent_migrations_on_postgres_do_not_collide(pg_url: str):
    """Several components start at once and each migrates; the advisory lock serializes them."""
    code = f"from atelier.db import migrate; migrate({pg_url!r})"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    assert current_revision(pg_url) == _head()
