"""A segmented video whose segments wait behind other videos for longer than the lease: one
`video` worker takes the segmented job, sends its chord, then runs four whole 2x2 videos that
were queued after it before it reaches the segments. Nothing of the segmented job runs meanwhile;
the reaper sees its segment messages in the broker and keeps its lease, so it finishes in its first
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
    submit_videos,
    wait_for,
)

pytestmark = pytest.mark.slow
SCENARIO = "Segmented video whose segments wait behind four whole videos"
SEGMENTED = VideoParams(filter="pixelate", segment_seconds=0.5)
# Queued behind the segmented job: together longer than the lease, on an idle machine too. Each
# different, so none is joined to another as identical work.
BOARDS = [
    VideoParams(layout="2x2", filter=name) for name in ("blur", "pixelate", "sketch", "cartoon")
]


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
            # Each run's work differs from the last (padding), so none of it is a finished
            # job's identical twin.
            padding = {"padding": 0.15 + run / 100}
            work = [SEGMENTED, *BOARDS]
            ids = submit_videos(c, clip, [each.model_copy(update=padding) for each in work])
            segmented = ids[0]
            seen: list[tuple[float, float]] = []  # (when, progress) while the job runs

            def finished(ids: list[int] = ids, seen: list[tuple[float, float]] = seen) -> bool:
                rows = jobs(c.db_url, ids)
                if rows[0].state == JobState.RUNNING:
                    seen.append((time.monotonic(), rows[0].progress))
                return all(JobState(row.state).finished for row in rows)

            wait_for(finished, 300, "the videos to finish", interval=0.2)
            seconds = time.monotonic() - started
            got = outcome(c.db_url, ids, frames)
            moved = next((t for t, p in seen if p > 0), seen[-1][0] if seen else 0.0)
            waited = moved - seen[0][0] if seen else 0.0  # before its first segment was done
            record(
                SCENARIO,
                run,
                "wait",
                1,
                got,
                seconds,
                progress_seen=sorted({p for _, p in seen}),
                waited_s=round(waited, 1),
            )
            assert_clean(got, jobs(c.db_url, ids), c.logs())
            assert got.attempts == [1] * len(ids), f"{got}\n{c.logs()}"
            assert job(c.db_url, segmented).meta["segments"] == 4
            assert any(0 < p < 1 for _, p in seen), seen  # progress moved while segments ran
            # The scenario holds only if the segments waited longer than the lease.
            assert waited > float(c.env["ATELIER_LEASE_SECONDS"]), f"waited only {waited:.1f} s"
            assert not list(tmp.glob("segments-*")), list(tmp.iterdir())
