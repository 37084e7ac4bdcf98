"""Work that hangs, silently, must not hold a worker for ever.

The hang here is a real one: the work waits inside PostgreSQL for a lock that another session
holds (as a long migration or `VACUUM FULL` would hold it) on the `assets` table, which a job
needs to record its result, or a video job to name its input. Such work reports no progress,
so neither a heartbeat nor a cancel reaches it; the lease keeper keeps renewing it all the same.

- A cancel ends it: once every job of the message is cancelled and the work has not returned,
  the worker ends the process running it, starts a new one and takes the next job.
- Its time limit ends it: a whole video's message carries limits from the size and duration
  its header declares (an NST message's from its parameters: tests/core/test_limits.py), and a
  job past its hard limit is failed at once by the worker that killed its process, not left
  `running` for the reaper.
Each runs on a prefork worker, the `atelier worker` default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from celery.exceptions import TimeLimitExceeded

from atelier.batches import create_nst_batch, ingest_image
from atelier.celery_app import FAST_STYLIZE, create_app
from atelier.db import session_scope
from atelier.jobs import cancel
from atelier.models import JobState
from atelier.schemas import NSTParams, VideoParams
from tests.faults.harness import (
    Cluster,
    RedisServer,
    child_pids,
    cluster,
    job,
    submit_nst,
    submit_video,
    table_locked,
    wait_finished,
    wait_for,
    waiting_on_locks,
)

pytestmark = pytest.mark.slow
FAST = NSTParams(engine="fast", size=32)
WORKER = ["worker", "--queues", "video,fast", "--concurrency", "1", "--hostname", "w@%h"]


def _fast_job_without_send(c: Cluster, squares: list[Path]) -> tuple[int, str]:
    """A fast-engine job written as a producer writes it, not sent yet: (job id, task id)."""
    settings = c.settings
    with session_scope(c.db_url) as session:
        content = ingest_image(session, settings, squares[0]).sha256
        style = ingest_image(session, settings, squares[-1]).sha256
    plan = create_nst_batch(settings, [content], [style], FAST, source="faults", force=True)
    return plan.job_ids[0], plan.task_ids[0]


def _ends_ok(c: Cluster, squares: list[Path]) -> None:
    """The worker still takes work: a new fast job, sent with its unscaled time limit (a new
    pool process may take seconds to load the network on a busy machine), succeeds."""
    unscaled = replace(c, extra={**c.extra, "ATELIER_TIME_LIMIT_SCALE": "1"})
    done = submit_nst(unscaled, squares[1:2], squares[-1:], FAST)
    wait_finished(c.db_url, done, 120)
    assert job(c.db_url, done[0]).state == JobState.SUCCEEDED, c.logs()


def test_cancel_ends_the_process_of_work_that_reports_nothing(
    tmp_path: Path, pg_url: str, fault_redis: RedisServer, squares: list[Path]
):
    with cluster(tmp_path, pg_url, fault_redis.url, ATELIER_TIME_LIMIT_SCALE="0") as c:
        (hung,) = submit_nst(c, squares[:1], squares[-1:], FAST)
        with table_locked(c.db_url, "assets"):
            worker = c.start("w", WORKER, " ready.")
            wait_for(lambda: waiting_on_locks(c.db_url), 120, "the job to hang")
            (child,) = child_pids(worker.pid)
            assert job(c.db_url, hung).state == JobState.RUNNING
            assert cancel(c.db_url, hung)
            # The worker replaces the process while the lock is still held.
            wait_for(lambda: child not in child_pids(worker.pid), 60, "the process to end")
            assert "asking the worker to end process" in c.log("w"), c.logs()
        row = job(c.db_url, hung)
        assert row.state == JobState.CANCELLED
        # Monitors see the task as revoked (Celery's own record of a terminated task).
        task = create_app(c.settings).AsyncResult(row.celery_task_id)
        wait_for(lambda: task.state == "REVOKED", 30, "the task to show as revoked")
        _ends_ok(c, squares)
        assert worker.poll() is None, c.logs()


def test_time_limits_end_hung_work_and_fail_its_jobs_at_once(
    tmp_path: Path, pg_url: str, fault_redis: RedisServer, squares: list[Path], clip: Path
):
    # Scaled to 1 %, the limits derived from these sizes are a few seconds (soft); the lease is
    # long and no reaper runs, so only the time limits can end these jobs.
    scaled = {"ATELIER_TIME_LIMIT_SCALE": "0.01", "ATELIER_LEASE_SECONDS": "600"}
    with cluster(tmp_path, pg_url, fault_redis.url, **scaled) as c:
        video = submit_video(c, clip, VideoParams(filter="blur", segment_seconds=0))
        # A message with a hard limit only, as Celery's `task_time_limit` would give it: the
        # work is killed, with no soft limit before.
        hard, task_id = _fast_job_without_send(c, squares)
        create_app(c.settings).send_task(FAST_STYLIZE, args=[[hard]], task_id=task_id, time_limit=5)
        with table_locked(c.db_url, "assets"):
            worker = c.start("w", WORKER, " ready.")
            wait_finished(c.db_url, [video, hard], 240)
        row = job(c.db_url, video)
        assert row.state == JobState.FAILED, (row.state, row.error, c.logs())
        assert "stopped at its time limit" in row.error and row.attempts == 1, row.error
        killed = job(c.db_url, hard)
        assert killed.state == JobState.FAILED, (killed.state, killed.error, c.logs())
        assert "hard time limit (5 s)" in killed.error and killed.attempts == 1, killed.error
        task = create_app(c.settings).AsyncResult(task_id)
        assert task.state == "FAILURE" and isinstance(task.result, TimeLimitExceeded), task.state
        _ends_ok(c, squares)
        assert worker.poll() is None, c.logs()


@contextmanager
def _job_row_locked(db_url: str, job_id: int) -> Iterator[None]:
    """Hold the job's row locked, as a slow transaction elsewhere would: a write to it waits."""
    with psycopg.connect(db_url.replace("+psycopg", "", 1)) as conn:
        conn.execute("SELECT id FROM jobs WHERE id = %s FOR UPDATE", (job_id,))
        try:
            yield
        finally:
            conn.rollback()


def test_failing_a_job_at_its_hard_limit_does_not_hold_up_the_worker(
    tmp_path: Path, pg_url: str, fault_redis: RedisServer, squares: list[Path]
):
    """The write that fails a job killed at its hard limit waits for the job's row; the
    worker's main process does not wait with it: it ends the hung process and starts another
    meanwhile, and the job is failed once its row is free."""
    with cluster(tmp_path, pg_url, fault_redis.url, ATELIER_LEASE_SECONDS="600") as c:
        hard, task_id = _fast_job_without_send(c, squares)
        create_app(c.settings).send_task(FAST_STYLIZE, args=[[hard]], task_id=task_id, time_limit=5)
        with table_locked(c.db_url, "assets"):
            worker = c.start("w", WORKER, " ready.")
            wait_for(lambda: waiting_on_locks(c.db_url), 120, "the job to hang")
            (child,) = child_pids(worker.pid)
            with _job_row_locked(c.db_url, hard):
                replaced = lambda: child_pids(worker.pid) not in ([], [child])  # noqa: E731
                wait_for(replaced, 60, "the hung process to be replaced")
                assert job(c.db_url, hard).state == JobState.RUNNING  # its failure still waits
        wait_finished(c.db_url, [hard], 60)
        killed = job(c.db_url, hard)
        assert killed.state == JobState.FAILED, (killed.state, killed.error, c.logs())
        assert "hard time limit (5 s)" in killed.error and killed.attempts == 1, killed.error
        _ends_ok(c, squares)
        assert worker.poll() is None, c.logs()
