"""A video's segment keeps its job's lease while it reports nothing: its face rows wait inside
PostgreSQL for a lock held on `frame_stats` (as a long migration or `VACUUM FULL` would hold it),
and the segment's lease-keeper thread goes on renewing the job's heartbeat meanwhile (the rows
are written before the job's row, so the waiting write does not hold the row the keeper renews).
Then the lock goes, and the job finishes in its first attempt. (Not in FAULTS.md's tables: no
fault is injected into the job itself.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from atelier.models import JobState
from atelier.schemas import VideoParams
from tests.faults import harness
from tests.faults.harness import RedisServer

pytestmark = pytest.mark.slow
SEGMENTED = VideoParams(filter="blur", segment_seconds=1.0)


def test_a_silent_segment_keeps_its_lease(
    tmp_path: Path, pg_url: str, fault_redis: RedisServer, clip: Path
):
    with harness.cluster(tmp_path, pg_url, fault_redis.url) as c:
        c.start(*c.worker_spec("video-0", "video", "--concurrency", "1"))
        job_id = harness.submit_video(c, clip, SEGMENTED)
        harness.wait_for(
            lambda: "segments" in (harness.job(pg_url, job_id).meta or {}), 120, "the segments"
        )
        with harness.table_locked(pg_url, "frame_stats"):
            harness.wait_for(lambda: harness.waiting_on_locks(pg_url), 120, "a segment to wait")
            before = harness.job(pg_url, job_id).heartbeat_at
            time.sleep(6 * float(c.env["ATELIER_HEARTBEAT_SECONDS"]))
            after = harness.job(pg_url, job_id)
            assert after.state == JobState.RUNNING, c.logs()
            assert after.heartbeat_at > before, c.logs()  # renewed while the segment waits
        harness.wait_finished(pg_url, [job_id], 300)
        row = harness.job(pg_url, job_id)
        assert (row.state, row.attempts) == (JobState.SUCCEEDED, 1), c.logs()
