"""Job rows written straight into the database, in the states the scheduler deals with."""

from __future__ import annotations

from atelier.db import session_scope
from atelier.models import Job, JobKind
from atelier.settings import Settings


def add_job(settings: Settings, kind: str = JobKind.PING, **values: object) -> int:
    with session_scope(settings.resolved_database_url) as session:
        job = Job(kind=kind, **{"inputs": {}, "params": {}, "meta": {}, **values})
        session.add(job)
        session.flush()
        return job.id


def get_job(settings: Settings, job_id: int) -> Job:
    with session_scope(settings.resolved_database_url) as session:
        return session.get(Job, job_id)
