"""Time going by for a lease, without waiting for it: a job's last heartbeat moved into the past,
as if its worker had said nothing since. Leases are judged by the database's clock, so the row
is what moves, not this process's clock."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from atelier.db import session_scope
from atelier.models import Job


def age_heartbeat(db_url: str, job_id: int, seconds: float) -> None:
    """Move job `job_id`'s last heartbeat `seconds` earlier."""
    with session_scope(db_url) as session:
        row = session.get(Job, job_id)
        assert row is not None and row.heartbeat_at is not None, f"job {job_id} never ran"
        heard = row.heartbeat_at - timedelta(seconds=seconds)
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=heard))
