"""What a video job records: its face rows as the frames are processed, and, once done, its
result file, its outcome and any warning about the faces it found (or the failure it requires
when none was found)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from atelier import jobs
from atelier.assets import record_asset
from atelier.db import session_scope
from atelier.errors import InputError
from atelier.schemas import VideoParams
from atelier.storage import Storage


def job_row(lease: jobs.Lease) -> Any:
    """The job's row, read afresh (a task that holds only its lease reads its inputs here)."""
    from atelier.models import Job

    with session_scope(lease.db_url) as session:
        return session.get(Job, lease.job_id)


class FrameRows:
    """Face rows written as the video is processed, a few hundred frames at a time, so neither
    the worker nor the database transaction holds a whole video's rows. `of` (the video's frame
    count, for segments) makes each write also set the job's progress."""

    BATCH = 250

    def __init__(self, lease: jobs.Lease, of: int | None = None) -> None:
        self.lease = lease
        self.of = of
        self.first = 0
        self.pending: list[list[list[int]]] = []

    def add(self, first: int, faces: list[Any]) -> None:
        if not self.pending:
            self.first = first
        self.pending += [[list(map(int, box)) for box in boxes] for boxes in faces]
        if len(self.pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        end = self.first + len(self.pending)
        rows = list(enumerate(self.pending, start=self.first))
        jobs.record_frames(self.lease, self.first, end, rows, of=self.of)
        self.first, self.pending = end, []


@dataclass(frozen=True)
class Outcome:
    """What a finished video job records about itself: `seconds` of work, and a `duration` of
    play (from the input's frame times: at a varying frame rate, not frames / fps)."""

    frames: int
    fps: float
    width: int
    height: int
    seconds: float
    segments: int
    duration: float
    frames_tracked: int = 0
    extra_detections: int = 0
    faces_lost: int = 0
    first_lost: int | None = None


def finish(
    lease: jobs.Lease, storage: Storage, produced: Path, outcome: Outcome, params: VideoParams
) -> None:
    """Move the finished video into storage, then mark the job done, with a warning when no
    face was found or a face was lost; with `require_faces`, fail it with that warning instead
    (InputError)."""
    from atelier.models import FrameStat
    from workers.video.findings import face_warning
    from workers.video.probe import probe_video

    with session_scope(lease.db_url) as session:
        with_faces = session.scalar(
            select(func.count()).where(FrameStat.job_id == lease.job_id, FrameStat.faces > 0)
        )
    source = probe_video(storage.local_path(job_row(lease).inputs["video"]))
    warning = face_warning(
        frames=outcome.frames,
        with_faces=with_faces,
        lost=outcome.faces_lost,
        first_lost=outcome.first_lost,
        detector=params.detector,
        width=source.width,
        height=source.height,
    )
    if warning and params.require_faces:
        raise InputError(f"{warning} (the job requires faces: --require-faces)")
    stored = storage.adopt(produced)
    with session_scope(lease.db_url) as session:
        asset = record_asset(
            session,
            stored,
            kind="result",
            media_type="video/mp4",
            width=outcome.width,
            height=outcome.height,
            duration=outcome.duration,
            label=f"job {lease.job_id}",
        )
        asset_id = asset.id
    meta = {
        **asdict(outcome),
        "frames_with_faces": with_faces,
        "processing_fps": round(outcome.frames / outcome.seconds, 2) if outcome.seconds else None,
    }
    jobs.succeed(lease, asset_id, meta, outcome.seconds, warning=warning)
