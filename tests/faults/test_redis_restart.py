"""Redis restarted in the middle of a batch, with nothing on disk: every message is lost, those
waiting in the queues and those the workers hold. The database still says which jobs are not
done; the reaper re-sends them once the broker is back, so all 12 jobs finish, each once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from atelier.models import JobState
from atelier.schemas import NSTParams
from tests.faults.harness import (
    RedisServer,
    assert_clean,
    cluster,
    fault_runs,
    jobs,
    outcome,
    record,
    submit_nst,
    wait_finished,
    wait_for,
)

pytestmark = pytest.mark.slow
NST = NSTParams(size=32, iterations=10, seed=5)


def _under_way(db_url: str, job_ids: list[int]) -> bool:
    """Some jobs are part way through and others still wait for a worker."""
    states = [(row.state, row.progress) for row in jobs(db_url, job_ids)]
    running = any(state == JobState.RUNNING and progress > 0 for state, progress in states)
    return running and any(state == JobState.QUEUED for state, _ in states)


def test_a_batch_of_12_jobs_finishes_across_a_redis_restart(
    tmp_path: Path, pg_url: str, fault_redis: RedisServer, squares: list[Path]
):
    # 3 x 4 = 12 jobs in 3 messages of 4: two run on the two workers while the third waits.
    contents, styles = squares[:3], squares[4:8]
    with cluster(tmp_path, pg_url, fault_redis.url) as c:
        c.start_many(
            [
                c.worker_spec("nst-0", "nst"),
                c.worker_spec("nst-1", "nst"),
                c.worker_spec("reaper", "default"),
                c.beat_spec(),
            ]
        )
        for run in range(1, fault_runs() + 1):
            started = time.monotonic()
            ids = submit_nst(c, contents, styles, NST)
            assert len(ids) == 12
            wait_for(lambda ids=ids: _under_way(c.db_url, ids), 300, "the batch to be under way")
            before = [row.state for row in jobs(c.db_url, ids)]
            away = fault_redis.restart(down_for=1.0)
            wait_finished(c.db_url, ids, 300)
            seconds = time.monotonic() - started
            rows = jobs(c.db_url, ids)
            got = outcome(c.db_url, ids, NST.iterations)
            record(
                "Restart Redis (no persistence) during a batch of 12 NST jobs",
                run,
                "restart",
                1,
                got,
                seconds,
                at_restart={state: before.count(state) for state in sorted(set(before))},
                redis_away_s=round(away, 1),
            )
            assert_clean(got, rows, c.logs())
            # Running jobs go on through the outage; lost messages are re-sent, not re-run.
            assert [row.attempts for row in rows] == [1] * 12, got
