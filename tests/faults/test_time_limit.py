"""Work that runs far past what its size calls for is stopped by Celery's time limit on a prefork
worker: the job fails with a message saying so, in its first attempt, and the worker goes on."""

from __future__ import annotations

from pathlib import Path

import pytest

from atelier.models import JobState
from atelier.schemas import NSTParams
from tests.faults.harness import RedisServer, cluster, job, submit_nst, wait_finished

pytestmark = pytest.mark.slow
# 5000 steps at 32 px take minutes here; scaled down to 5 %, the limit derived from that size is
# about 30 s: after TensorFlow has traced the step (a soft limit that lands inside AutoGraph's
# tracing is swallowed by it, and only the hard limit then stops the work).
# The producer (this test, `Cluster.settings`) sets the limits on the message.
LONG = NSTParams(size=32, iterations=5000, seed=2)


def test_an_nst_job_past_its_time_limit_fails_with_a_message(
    tmp_path: Path, pg_url: str, fault_redis: RedisServer, squares: list[Path]
):
    with cluster(tmp_path, pg_url, fault_redis.url, ATELIER_TIME_LIMIT_SCALE="0.05") as c:
        worker = c.start(
            "nst-0",
            ["worker", "--queues", "nst", "--pool", "prefork", "--concurrency", "1"],
            " ready.",
        )
        job_id = submit_nst(c, squares[:1], squares[-1:], LONG)[0]
        wait_finished(c.db_url, [job_id], 300)
        row = job(c.db_url, job_id)
        assert row.state == JobState.FAILED, (row.state, row.error, c.logs())
        assert "time limit" in row.error and row.attempts == 1, row.error
        assert worker.poll() is None, c.logs()  # the worker is still there for the next job
