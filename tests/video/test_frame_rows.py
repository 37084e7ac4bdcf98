"""A video job's face rows are written as it runs, every 250 frames, not all at its end."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from atelier import jobs
from atelier.db import migrate, session_scope
from atelier.models import FrameStat, JobKind
from atelier.settings import Settings
from tests.scheduler.jobrows import add_job
from workers.tasks.video_records import FrameRows
from workers.video.pipeline import REPORT_EVERY


def test_face_rows_are_written_every_250_frames_while_the_job_runs(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data", database_url=None, broker_url=None)
    db_url = settings.resolved_database_url
    migrate(db_url)
    got = jobs.claim(db_url, add_job(settings, kind=JobKind.VIDEO), "test:1", 60)
    assert got.lease is not None
    rows = FrameRows(got.lease)

    def recorded() -> int:
        with session_scope(db_url) as session:
            return session.scalar(select(func.count()).where(FrameStat.job_id == got.lease.job_id))

    seen = []
    for first in range(0, 600, REPORT_EVERY):  # as the pipeline hands them over
        rows.add(first, [[[1, 2, 3, 4]]] * REPORT_EVERY)
        seen.append(recorded())
    assert seen == [done // 250 * 250 for done in range(REPORT_EVERY, 610, REPORT_EVERY)]
    rows.flush()  # the job's last frames, at its end
    assert recorded() == 600
