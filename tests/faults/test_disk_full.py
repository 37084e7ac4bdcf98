"""The disk of a worker fills up for a while and is freed again: a fast-engine job storing its
result and a segmented video job whose segments ffmpeg writes fail with a real `ENOSPC`, are
given back without spending an attempt each time, and finish once there is room. The disk stays
full for at least 5 s and until both jobs have met it (a deployment's full disk lasted minutes:
what matters is that every job meets it and spends nothing).

The worker runs in a user and mount namespace of its own (`unshare`), on a small tmpfs mounted
over its data folder (holding a copy of what the producer stored there before); the test fills
that tmpfs with a file, reached through the worker's `/proc/<pid>/root`, and deletes it to free
the disk. No privilege is needed."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from atelier.batches import (
    create_nst_batch,
    create_video_job,
    ingest_image,
    ingest_video,
    send_plan,
)
from atelier.celery_app import create_app
from atelier.db import session_scope
from atelier.models import AttemptOutcome, JobAttempt
from atelier.schemas import NSTParams, VideoParams
from tests.faults import harness
from tests.faults.harness import Cluster, RedisServer
from tests.support.procs import atelier_process, wait_for_log
from tests.support.small_disk import fill, namespaces_work, on_small_disk

pytestmark = pytest.mark.slow
FULL_FOR = 5.0
DISK_MB = 64
FAST = NSTParams(engine="fast", size=32)
SEGMENTED = VideoParams(filter="pixelate", segment_seconds=0.5)


def start_on_small_disk(c: Cluster, name: str, queues: str) -> tuple[subprocess.Popen[bytes], Path]:
    """A worker whose data folder is a tmpfs of `DISK_MB` of its own, holding a copy of what the
    folder held; returns it and where this process sees that folder."""
    data = Path(c.env["ATELIER_DATA_DIR"])
    prefix = on_small_disk(data, DISK_MB, c.folder / "disk")
    log = c.folder / f"{name}.log"
    args = ["worker", "--queues", queues, "--hostname", f"{name}@%h", "--concurrency", "2"]
    proc = c.stack.enter_context(atelier_process(args, c.env, log, None, prefix=prefix))
    c.procs.append(proc)
    wait_for_log(log, " ready.", 120, proc)
    return proc, Path(f"/proc/{proc.pid}/root{data}")


def _all_given_back(c: Cluster, ids: list[int]) -> bool:
    """Whether every job of `ids` has been given back by an outage at least once."""
    return all(row.max_attempts > c.settings.max_attempts for row in harness.jobs(c.db_url, ids))


def test_a_full_disk_holds_jobs_without_spending_attempts(
    tmp_path: Path, pg_url: str, fault_redis: RedisServer, squares: list[Path], clip: Path
):
    if not namespaces_work(tmp_path / "probe"):
        pytest.skip("unprivileged user namespaces (unshare --user --mount) are not available")
    with harness.cluster(tmp_path, pg_url, fault_redis.url, ATELIER_LEASE_SECONDS="30") as c:
        settings = c.settings
        with session_scope(c.db_url) as session:  # stored before the worker copies its folder
            contents = [ingest_image(session, settings, path).sha256 for path in squares[:2]]
            style = ingest_image(session, settings, squares[-1]).sha256
            video = ingest_video(session, settings, clip).sha256
        worker, disk = start_on_small_disk(c, "cpu-0", "fast,video,default")
        app = create_app(settings)
        for run in range(1, harness.fault_runs() + 1):
            started = time.monotonic()
            fast = create_nst_batch(settings, [contents[run % 2]], [style], FAST, force=True)
            padded = SEGMENTED.model_copy(update={"padding": 0.1 + run / 100})
            segmented = create_video_job(settings, video, padded)
            filler = fill(disk)
            for plan in (fast, segmented):
                send_plan(app, settings, plan)
            ids = [*fast.job_ids, *segmented.job_ids]
            time.sleep(FULL_FOR)
            harness.wait_for(
                lambda ids=ids: _all_given_back(c, ids), 180, "both jobs to meet the disk"
            )
            filler.unlink()
            harness.wait_finished(c.db_url, ids, 300)
            _check_run(c, ids, run, time.monotonic() - started)
            assert worker.poll() is None, c.log("cpu-0")


def _check_run(c: Cluster, ids: list[int], run: int, seconds: float) -> None:
    """Record the run (the attempts counted are those spent: claims less those given back) and
    check it: both jobs succeeded, each in the one attempt it spent, after meeting the disk."""
    rows = harness.jobs(c.db_url, ids)
    given_back = [row.max_attempts - c.settings.max_attempts for row in rows]
    spent = [row.attempts - back for row, back in zip(rows, given_back, strict=True)]
    frames = rows[1].meta.get("frames", 0)
    for index, (name, expect_rows) in enumerate((("fast-engine", 0), ("video", frames))):
        got = harness.outcome(c.db_url, ids[index : index + 1], expect_rows)
        got.attempts = spent[index : index + 1]
        harness.record(
            f"Fill a worker's disk (at least {FULL_FOR:.0f} s) under a {name} job",
            run,
            "disk full",
            1,
            got,
            seconds,
            given_back=given_back[index],
        )
    log = c.log("cpu-0")
    assert [row.state for row in rows] == ["succeeded"] * 2, c.logs()
    assert spent == [1, 1], (spent, c.logs())  # the attempt that succeeded, no other
    assert all(back >= 1 for back in given_back), (given_back, log)  # the disk was met
    assert "the disk is full" in log, log
    with session_scope(c.db_url) as session:  # each attempt the disk cut short says so
        outcomes = session.execute(
            select(JobAttempt.job_id, JobAttempt.outcome).where(JobAttempt.job_id.in_(ids))
        ).all()
    given = Counter(job_id for job_id, outcome in outcomes if outcome == AttemptOutcome.GIVEN_BACK)
    assert [given[job_id] for job_id in ids] == given_back, outcomes
