"""A worker SIGKILLed in the middle of a job: the reaper re-sends it after its lease runs out and
another worker does it again from the start. The job ends with one result and one history row per
iteration (NST) or frame (video): the dead attempt's rows are dropped when the job is claimed again,
and fencing keeps anything it left in flight from being written."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from atelier.schemas import NSTParams, VideoParams
from tests.faults.harness import (
    Cluster,
    RedisServer,
    assert_clean,
    cluster,
    fault_runs,
    holder,
    job,
    kill,
    outcome,
    record,
    submit_nst,
    submit_video,
    wait_finished,
    wait_running,
)

pytestmark = pytest.mark.slow
NST = NSTParams(size=32, iterations=40, seed=3)
VIDEO = VideoParams(filter="pixelate")


def _kill_mid_job(
    c: Cluster, queue: str, submit: Callable[[], int], expect_rows: int, scenario: str
) -> None:
    """Per run: submit one job, SIGKILL the worker running it once its heartbeats show it part
    way through, start a replacement worker, and check the job was finished by another worker."""
    workers = c.start_many(
        [
            c.worker_spec(f"{queue}-0", queue),
            c.worker_spec(f"{queue}-1", queue),
            c.worker_spec("reaper", "default"),
            c.beat_spec(),
        ]
    )[:2]
    for run in range(1, fault_runs() + 1):
        started = time.monotonic()
        job_id = submit()
        row = wait_running(c.db_url, job_id, 0.1, 0.75, 300)
        victim = holder(row, workers)
        kill(victim)
        workers.remove(victim)
        workers.append(c.worker(f"{queue}-{run + 1}", queue))
        wait_finished(c.db_url, [job_id], 300)
        final = job(c.db_url, job_id)
        got = outcome(c.db_url, [job_id], expect_rows)
        seconds = time.monotonic() - started
        record(scenario, run, "kill", 1, got, seconds, killed_at=round(row.progress, 3))
        assert_clean(got, [final], c.logs())
        assert final.attempts == 2, f"{got}\n{c.logs()}"  # the killed one, then one more
        assert final.worker != row.worker and final.worker is not None


def test_a_job_of_a_killed_nst_worker_is_finished_by_another(
    tmp_path: Path, pg_url: str, fault_redis: RedisServer, squares: list[Path]
):
    with cluster(tmp_path, pg_url, fault_redis.url) as c:
        _kill_mid_job(
            c,
            "nst",
            lambda: submit_nst(c, squares[:1], squares[-1:], NST)[0],
            NST.iterations,
            "SIGKILL an NST worker mid-job",
        )


def test_a_job_of_a_killed_video_worker_is_finished_by_another(
    tmp_path: Path, pg_url: str, fault_redis: RedisServer, clip: Path
):
    from workers.video.probe import probe_video

    frames = probe_video(clip).frame_count
    with cluster(tmp_path, pg_url, fault_redis.url) as c:
        _kill_mid_job(
            c,
            "video",
            lambda: submit_video(c, clip, VIDEO),
            frames,
            "SIGKILL a video worker mid-job",
        )
