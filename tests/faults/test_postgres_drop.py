"""PostgreSQL connections dropped under a running worker (`pg_terminate_backend` on the
connections of the worker process while it runs a job): the worker reconnects and the job
finishes once, on that same worker process, with its full loss history."""

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
    job,
    outcome,
    record,
    submit_nst,
    terminate_backends,
    wait_finished,
    wait_running,
)

pytestmark = pytest.mark.slow
NST = NSTParams(size=32, iterations=40, seed=7)
DROPS = 3  # connections dropped up to this many times per job, half a second apart


def test_a_worker_recovers_when_its_database_connections_are_dropped(
    tmp_path: Path, pg_url: str, fault_redis: RedisServer, squares: list[Path]
):
    with cluster(tmp_path, pg_url, fault_redis.url) as c:
        worker = c.start_many(
            [c.worker_spec("nst-0", "nst"), c.worker_spec("reaper", "default"), c.beat_spec()]
        )[0]
        for run in range(1, fault_runs() + 1):
            started = time.monotonic()
            job_id = submit_nst(c, squares[:1], squares[-1:], NST)[0]
            running = wait_running(c.db_url, job_id, 0.1, 0.5, 300)
            process = int((running.worker or "").rsplit(":", 1)[-1])  # the one running the job
            dropped = 0
            for _ in range(DROPS):
                if job(c.db_url, job_id).state != JobState.RUNNING:
                    break
                dropped += terminate_backends(c.db_url, process)
                time.sleep(0.5)
            wait_finished(c.db_url, [job_id], 300)
            final = job(c.db_url, job_id)
            got = outcome(c.db_url, [job_id], NST.iterations)
            seconds = time.monotonic() - started
            scenario = "Drop the worker's PostgreSQL connections mid-job"
            record(scenario, run, "drop", dropped, got, seconds)
            assert dropped > 0, "the worker held no database connection to drop"
            assert worker.poll() is None, c.logs()
            assert_clean(got, [final], c.logs())
            assert final.worker == running.worker, c.logs()  # the same process carried on
