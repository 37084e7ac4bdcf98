"""The rows an attempt records along the way: losses per iteration, faces per frame.

Both are written inside the attempt's fenced transitions (`atelier.jobs`) and replaced rather
than appended, so a write retried after a commit whose answer was lost writes them once.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from atelier.models import FrameStat, LossRecord


def add_losses(session: Session, job_id: int, losses: Sequence[Sequence[float]]) -> None:
    """Insert loss rows, replacing rows of the same iterations."""
    if not losses:
        return
    iterations = [int(row[0]) for row in losses]
    session.execute(
        delete(LossRecord).where(LossRecord.job_id == job_id, LossRecord.iteration.in_(iterations))
    )
    session.execute(
        insert(LossRecord),
        [
            {"job_id": job_id, "iteration": int(it), "total": t, "content": c, "style": s, "tv": v}
            for it, t, c, s, v in losses
        ],
    )


def replace_frames(
    session: Session, job_id: int, start: int, end: int, frames: Sequence[tuple[int, list]]
) -> None:
    """Replace the face rows of frames [start, end) with `frames` (frame, boxes)."""
    session.execute(
        delete(FrameStat).where(
            FrameStat.job_id == job_id, FrameStat.frame >= start, FrameStat.frame < end
        )
    )
    rows = [
        {"job_id": job_id, "frame": f, "faces": len(boxes), "boxes": boxes} for f, boxes in frames
    ]
    if rows:
        session.execute(insert(FrameStat), rows)


def forget(session: Session, job_id: int) -> None:
    """Drop what earlier attempts recorded: a new attempt starts from scratch."""
    session.execute(delete(LossRecord).where(LossRecord.job_id == job_id))
    session.execute(delete(FrameStat).where(FrameStat.job_id == job_id))
