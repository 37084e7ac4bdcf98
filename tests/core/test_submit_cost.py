"""What queueing costs the database: statements and commits counted, not timed.

A commit (a WAL flush) is the dearest step between a job being queued and a worker starting it,
and a 1,000-cell grid must not cost thousands of round trips.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event, select

from atelier.assets import record_asset
from atelier.batches import create_nst_batch, send_plan
from atelier.celery_app import PING, create_app
from atelier.db import get_engine, migrate, session_scope
from atelier.models import Job
from atelier.schemas import NSTParams
from atelier.settings import Settings
from atelier.storage import Storage
from atelier.submit import create_ping_job, new_task_id, send_jobs


@contextmanager
def counted(url: str) -> Iterator[dict[str, int]]:
    """Statements, writes among them, and commits issued on `url`'s engine inside the block."""
    engine = get_engine(url)
    seen = {"statements": 0, "writes": 0, "commits": 0}

    def statement(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        seen["statements"] += 1
        seen["writes"] += not sql.lstrip().upper().startswith("SELECT")

    def commit(*_args: object) -> None:
        seen["commits"] += 1

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", statement)
        event.remove(engine, "commit", commit)


@pytest.fixture
def settings(tmp_path: Path, pg_url: str, redis_url: str) -> Settings:
    migrate(pg_url)
    return Settings(data_dir=tmp_path / "data", database_url=pg_url, broker_url=redis_url)


def _images(settings: Settings, count: int) -> list[str]:
    storage = Storage(settings.resolved_storage_dir)
    with session_scope(settings.resolved_database_url) as session:
        return [
            record_asset(
                session,
                storage.put_bytes(f"image {i}".encode()),
                kind="image",
                media_type="image/png",
            ).sha256
            for i in range(count)
        ]


def test_a_1000_cell_grid_is_a_handful_of_statements(settings: Settings):
    shas = _images(settings, 50 + 20)
    db = settings.resolved_database_url
    with counted(db) as seen:
        plan = create_nst_batch(settings, shas[:50], shas[50:], NSTParams(), force=False)
    assert len(plan.job_ids) == 1000 and len(plan.messages) == 250
    assert seen["commits"] == 1
    assert seen["statements"] < 20, seen
    with session_scope(db) as session:
        rows = session.execute(select(Job.id, Job.celery_task_id)).all()
    by_task = {task_id: set() for _, task_id in rows}
    for job_id, task_id in rows:
        by_task[task_id].add(job_id)
    assert sorted(map(sorted, by_task.values())) == sorted(map(sorted, plan.messages))

    with counted(db) as seen:
        send_plan(create_app(settings), settings, plan)
    assert seen["writes"] == 0, seen  # the rows already carry their task ids


def test_a_ping_job_is_queued_in_one_write_and_sent_without_any(settings: Settings):
    db = settings.resolved_database_url
    task_id = new_task_id()
    with counted(db) as seen:
        job_id = create_ping_job(db, task_id=task_id)
        assert send_jobs(create_app(settings), db, PING, [job_id], task_id=task_id) == task_id
    assert seen["writes"] == 1, seen  # the row, with its task id: no second write to send it
    with session_scope(db) as session:
        assert session.get(Job, job_id).celery_task_id == task_id
