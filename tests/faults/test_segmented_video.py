"""A segmented video whose segments wait behind other videos for longer than the lease: one
`video` worker takes the segmented job, sends its chord, then runs a whole 2x2 video that was
queued after it before it reaches the segments. Nothing of the segmented job runs meanwhile; the
reaper sees its segment messages in the broker and keeps its lease, so it finishes in its first
attempt, its progress moves as segments finish, and no segment folder is left behind."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from atelier.models import JobState
from atelier.schemas import VideoParams
from atelier.storage import Storage
from tests.faults.harness import (
    RedisServer,
    assert_clean,
    cluster,
    fault_runs,
    job,
    jobs,
    outcome,
    record,
    submit_video,
    wait_for,
)

pytestmark = pytest.mark.slow
SEGMENTED = VideoParams(filter="pixelate", segment_seconds=0.5)
BOARD = VideoParams(layout="2x2", filter="blur")


def test_a_segmented_video_keeps_its_lease_while_its_segments_wait(
    tmp_path: Path, pg_url: str, fault_redis: RedisServer, clip: Path
):
    from workers.video.probe import probe_video

    frames = probe_video(clip).frame_count
    with cluster(tmp_path, pg_url, fault_redis.url) as c:
        c.start_many(
            [c.worker_spec("video-0", "video"), c.worker_spec("reaper", "default"), c.beat_spec()]
        )
        tmp = Storage(c.settings.resolved_storage_dir).tmp
        for run in range(1, fault_runs() + 1):
            started = time.monotonic()
            segmented = submit_video(c, clip, SEGMENTED)
            ids = [segmented, submit_video(c, clip, BOARD)]
            seen: list[float] = []

            def finished(ids: list[int] = ids, seen: list[float] = seen) -> bool:
                rows = jobs(c.db_url, ids)
                if rows[0].state == JobState.RUNNING:
                    seen.append(rows[0].progress)
                return all(JobState(row.state).finished for row in rows)

            wait_for(finished, 300, "the videos to finish", interval=0.2)
            seconds = time.monotonic() - started
            got = outcome(c.db_url, ids, frames)
            record(
                "Segmented video whose segments wait behind a whole video",
                run,
                "wait",
                1,
                got,
                seconds,
                progress_seen=sorted(set(seen)),
            )
            assert_clean(got, jobs(c.db_url, ids), c.logs())
            assert got.attempts == [1, 1], f"{got}\n{c.logs()}"
            assert job(c.db_url, segmented).meta["segments"] == 4
            assert any(0 < p < 1 for p in seen), seen  # progress moved while segments ran
            assert not list(tmp.glob("segments-*")), list(tmp.iterdir())
