"""One job of a multi-job NST message cancelled between two of its heartbeats: the worker learns
of it only when it goes to store that job's result. The other jobs of the message must still be
finished by that worker in their first attempt (not left `running` for the reaper to re-send),
the cancelled job gets no result, and it keeps every loss row it computed, with the progress
those rows reached."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from atelier.db import session_scope
from atelier.jobs import cancel
from atelier.models import Asset, JobState, LossRecord
from atelier.schemas import NSTParams
from tests.faults.harness import (
    RedisServer,
    assert_clean,
    cluster,
    fault_runs,
    job,
    jobs,
    outcome,
    record,
    submit_nst,
    wait_finished,
    wait_for,
)

pytestmark = pytest.mark.slow
NST = NSTParams(size=32, iterations=40, seed=11)
# Heartbeats far apart (and a lease longer still): once the optimisation runs (after its compile
# stage or first loss rows reached the database), the worker hears of a cancel only when it goes
# to store the results.
QUIET = {"ATELIER_HEARTBEAT_SECONDS": "600", "ATELIER_LEASE_SECONDS": "1200"}


def _loss_rows(db_url: str, job_id: int) -> list[int]:
    with session_scope(db_url) as session:
        return list(
            session.scalars(
                select(LossRecord.iteration)
                .where(LossRecord.job_id == job_id)
                .order_by(LossRecord.iteration)
            )
        )


def _optimising(db_url: str, job_id: int) -> bool:
    """The job's last report before its iterations is in the database: its compile stage (the
    worker's first message of this shape) or its first loss rows (a shape compiled before)."""
    stage = job(db_url, job_id).meta.get("stage") or ""
    return stage.startswith("compiling") or bool(_loss_rows(db_url, job_id))


def _results_named(db_url: str, job_id: int) -> int:
    with session_scope(db_url) as session:
        return session.scalar(
            select(func.count()).where(Asset.kind == "result", Asset.label == f"job {job_id}")
        )


def test_cancelling_one_job_of_a_message_finishes_the_others_once(
    tmp_path: Path, pg_url: str, fault_redis: RedisServer, squares: list[Path]
):
    with cluster(tmp_path, pg_url, fault_redis.url, **QUIET) as c:
        c.start_many(
            [c.worker_spec("nst-0", "nst"), c.worker_spec("reaper", "default"), c.beat_spec()]
        )
        for run in range(1, fault_runs() + 1):
            started = time.monotonic()
            ids = submit_nst(c, squares[:1], squares[-4:], NST)  # one message of 4 jobs
            victim, others = ids[0], ids[1:]
            wait_for(lambda v=victim: _optimising(c.db_url, v), 300, "the optimisation")
            assert cancel(c.db_url, victim), vars(job(c.db_url, victim))
            wait_finished(c.db_url, others, 300)
            seconds = time.monotonic() - started
            got = outcome(c.db_url, others, NST.iterations)
            rows = jobs(c.db_url, others)
            cancelled = job(c.db_url, victim)
            kept = _loss_rows(c.db_url, victim)
            record(
                "Cancel one job of a 4-job NST message just before it is stored",
                run,
                "cancel",
                1,
                got,
                seconds,
                cancelled_rows=len(kept),
            )
            assert_clean(got, rows, c.logs())
            assert got.attempts == [1, 1, 1], f"{got}\n{c.logs()}"
            assert cancelled.state == JobState.CANCELLED and cancelled.result_asset_id is None
            assert _results_named(c.db_url, victim) == 0, "a cancelled job got a result file"
            # Every row computed before the worker saw the cancel is kept, and the progress
            # says how far they go.
            assert kept == list(range(1, len(kept) + 1)) and len(kept) > 1, kept
            assert cancelled.progress == pytest.approx(len(kept) / NST.iterations), cancelled
