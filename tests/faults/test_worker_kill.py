"""A worker SIGKILLed in the middle of a job: the reaper re-sends it after its lease runs out and
another worker does it again from the start. The job ends with one result and one history row per
iteration (NST) or frame (video): the dead attempt's rows are dropped when the job is claimed again,
and fencing keeps anything it left in flight from being written. Both scenarios share one cluster
(and so one xdist worker)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from atelier.schemas import NSTParams, VideoParams
from tests.faults.harness import (
    Cluster,
    assert_clean,
    cluster,
    fault_runs,
    have_redis_server,
    holder,
    job,
    kill,
    outcome,
    private_redis,
    record,
    submit_nst,
    submit_video,
    wait_finished,
    wait_running,
)
from tests.support.services import fresh_postgres_database

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("worker-kill")]
NST = NSTParams(size=32, iterations=40, seed=3)
VIDEO = VideoParams(filter="pixelate")


@dataclass
class KillCluster:
    """One cluster for the module: two workers per queue, a reaper and beat; a killed worker is
    replaced by a new one of the same queue."""

    c: Cluster
    workers: dict[str, list[subprocess.Popen[bytes]]]
    started: int = 0

    def replace(self, victim: subprocess.Popen[bytes], queue: str) -> None:
        self.workers[queue].remove(victim)
        self.started += 1
        self.workers[queue].append(self.c.worker(f"{queue}-new{self.started}", queue))


@pytest.fixture(scope="module")
def kill_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KillCluster]:
    """Started once for both scenarios (their start-up is most of a scenario's time)."""
    if not have_redis_server():
        pytest.fail("redis-server is not installed; the fault suite starts a private one")
    folder = tmp_path_factory.mktemp("kill")
    with (
        fresh_postgres_database() as db_url,
        private_redis(folder / "redis") as redis,
        cluster(folder, db_url, redis.url) as c,
    ):
        queues = ("nst", "video")
        specs = [c.worker_spec(f"{queue}-{n}", queue) for queue in queues for n in (0, 1)]
        procs = c.start_many([*specs, c.worker_spec("reaper", "default"), c.beat_spec()])
        yield KillCluster(c, {"nst": procs[0:2], "video": procs[2:4]})


def _kill_mid_job(
    k: KillCluster, queue: str, submit: Callable[[], int], expect_rows: int, scenario: str
) -> None:
    """Per run: submit one job, SIGKILL the worker running it once its heartbeats show it part
    way through, start a replacement worker, and check the job was finished by another worker."""
    c = k.c
    for run in range(1, fault_runs() + 1):
        started = time.monotonic()
        job_id = submit()
        row = wait_running(c.db_url, job_id, 0.1, 0.75, 300)
        victim = holder(row, k.workers[queue])
        kill(victim)
        k.replace(victim, queue)
        wait_finished(c.db_url, [job_id], 300)
        final = job(c.db_url, job_id)
        got = outcome(c.db_url, [job_id], expect_rows)
        seconds = time.monotonic() - started
        record(scenario, run, "kill", 1, got, seconds, killed_at=round(row.progress, 3))
        assert_clean(got, [final], c.logs())
        assert final.attempts == 2, f"{got}\n{c.logs()}"  # the killed one, then one more
        assert final.worker != row.worker and final.worker is not None


def test_a_job_of_a_killed_nst_worker_is_finished_by_another(
    kill_cluster: KillCluster, squares: list[Path]
):
    c = kill_cluster.c
    _kill_mid_job(
        kill_cluster,
        "nst",
        lambda: submit_nst(c, squares[:1], squares[-1:], NST)[0],
        NST.iterations,
        "SIGKILL an NST worker mid-job",
    )


def test_a_job_of_a_killed_video_worker_is_finished_by_another(
    kill_cluster: KillCluster, clip: Path
):
    from workers.video.probe import probe_video

    frames = probe_video(clip).frame_count
    c = kill_cluster.c
    _kill_mid_job(
        kill_cluster,
        "video",
        lambda: submit_video(c, clip, VIDEO),
        frames,
        "SIGKILL a video worker mid-job",
    )
