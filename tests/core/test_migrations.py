"""Migrations build the same schema on SQLite and PostgreSQL, and re-running them is harmless."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import ProgrammingError

from atelier.db import current_revision, get_engine, migrate
from tests.support.procs import REPO

TABLES = {"assets", "batches", "jobs", "job_attempts", "loss_history", "frame_stats", "inbox_files"}


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


def test_a_forked_child_opens_its_own_connections(pg_url: str):
    """Prefork workers fork after migrating: a child must not reuse the parent's socket."""
    engine = get_engine(pg_url)
    with engine.connect() as conn:
        parent = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    # the connection is back in the pool; a child reusing it would report the same backend
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            with get_engine(pg_url).connect() as conn:
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            os.write(writer, str(pid).encode())
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    assert int(os.read(reader, 32)) != parent
    with engine.connect() as conn:  # and the parent's pooled connection still works
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == parent


def test_a_failed_postgres_migration_says_why_and_frees_the_lock(pg_url: str):
    """A step that fails aborts the transaction; the error raised is the step's own, and the
    advisory lock is released, so the next process to start can migrate."""
    from atelier.db import _MIGRATION_LOCK_KEY

    with get_engine(pg_url).begin() as conn:  # what the first migration creates, already there
        conn.execute(text("CREATE TABLE assets (id integer)"))
    with pytest.raises(ProgrammingError, match='relation "assets" already exists'):
        migrate(pg_url)
    # Another session (not one of this engine's pooled connections) can take the lock at once.
    with psycopg.connect(pg_url.replace("+psycopg", "", 1)) as other:
        query = "SELECT pg_try_advisory_lock(%s)"
        assert other.execute(query, (_MIGRATION_LOCK_KEY,)).fetchone()[0]
    assert current_revision(pg_url) is None
