"""The reaper: no job is lost when a message or a worker is.

A job can be stranded two ways. Its message is gone (the producer died between commit and send,
Redis restarted without persistence, a worker died holding a countdown message): the row stays
`queued` with no message anywhere. Or its worker died: the row stays `running` and its heartbeat
stops. The reaper finds both from the database, which is the truth, and sends the jobs again
under their task name, grouped as producers group them (`atelier.batches`): one batch and one
parameter set per message, so each message's time limit is that of its own work. Before the job
has had `max_attempts` attempts it is re-queued; after, it is failed with the reason. Re-sending
a job that does still have a message somewhere only makes a duplicate message, which is
harmless: a worker claims a job with a compare-and-set, so the second message finds the job
running or finished and does nothing.

Every change it makes is a transition of `atelier.jobs` (`requeue`, `give_up`, `renew`), fenced
on the attempt it saw and on that attempt's lease having lapsed; a requeue retried after its
commit landed but its answer was lost recognises its own write, so the job is sent at once.
Leases are judged by the database's clock (`atelier.dbclock`), the clock every heartbeat is
written with, so a scheduler whose clock is off does not take live jobs for dead ones.

`requeue_stale` is a plain function so a command running the embedded worker can call it once at
start to pick up what an earlier, killed command left behind.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import Celery
from sqlalchemy import select

from atelier import jobs
from atelier.celery_app import NST_STYLIZE, PING, VIDEO_FILTER, nst_task_for
from atelier.db import session_scope
from atelier.dbclock import db_now
from atelier.models import Job, JobKind, JobState
from atelier.schemas import NSTParams
from atelier.settings import Settings
from atelier.submit import send_jobs
from scheduler.broker import live_messages

log = logging.getLogger(__name__)
TASK_FOR_KIND = {JobKind.PING: PING, JobKind.NST: NST_STYLIZE, JobKind.VIDEO: VIDEO_FILTER}


@dataclass(frozen=True)
class _Stale:
    id: int
    kind: str
    batch_id: int | None
    state: str
    attempts: int
    max_attempts: int
    worker: str | None
    task: str  # the task that runs it (NST jobs: by engine, so fast jobs stay on CPU workers)
    params: str  # its parameters, canonical: a message carries one set, as producers send it

    @property
    def seen(self) -> jobs.Seen:
        return jobs.Seen(self.id, self.attempts, self.state, self.worker)


def _task(kind: str, params: dict | None) -> str:
    if kind == JobKind.NST:
        return nst_task_for((params or {}).get("engine", "gatys"))
    return TASK_FOR_KIND[JobKind(kind)]


def _params_key(kind: str, params: dict | None) -> str:
    """A job's parameter set as the worker groups it: NST parameters with their defaults filled
    in (a row written before a field existed runs with its default)."""
    if kind == JobKind.NST:
        return NSTParams.model_validate(params or {}).model_dump_json()
    return json.dumps(params or {}, sort_keys=True)


def find_stale(settings: Settings, now: datetime) -> list[_Stale]:
    """Queued jobs untouched for the grace period, running jobs whose lease ran out."""
    grace_cut = now - timedelta(seconds=settings.requeue_grace_seconds)
    lease_cut = now - timedelta(seconds=settings.lease_seconds)
    with session_scope(settings.resolved_database_url) as session:
        rows = session.execute(
            select(
                Job.id,
                Job.kind,
                Job.batch_id,
                Job.state,
                Job.attempts,
                Job.max_attempts,
                Job.worker,
                Job.params,
            ).where(
                (
                    (Job.state == JobState.QUEUED)
                    & (Job.queued_at < grace_cut)
                    & ((Job.heartbeat_at.is_(None)) | (Job.heartbeat_at < grace_cut))
                )
                | ((Job.state == JobState.RUNNING) & (Job.heartbeat_at < lease_cut))
            )
        ).all()
    return [
        _Stale(
            **{k: v for k, v in row._mapping.items() if k != "params"},
            task=_task(row.kind, row.params),
            params=_params_key(row.kind, row.params),
        )
        for row in rows
        if row.kind in TASK_FOR_KIND
    ]


def requeue_stale(settings: Settings, app: Celery, now: datetime | None = None) -> list[int]:
    """Re-send every stranded job (see the module docstring); returns the ids re-sent.

    Jobs out of attempts are failed with the reason instead. When the broker cannot be read (it
    is down), nothing is done: the next pass will try again. `now` defaults to the database's
    clock.
    """
    if now is None:
        with session_scope(settings.resolved_database_url) as session:
            now = db_now(session)
    stale = find_stale(settings, now)
    if not stale:
        return []
    try:
        live = live_messages(
            app, settings, delivered_within=settings.lease_seconds + settings.requeue_grace_seconds
        )
    except Exception as error:  # noqa: BLE001 - any broker failure means: try next pass
        log.warning("reaper: cannot read the broker (%s); trying again next pass", error)
        return []
    db_url = settings.resolved_database_url
    lease_cut = now - timedelta(seconds=settings.lease_seconds)
    to_send: dict[tuple[str, str, int | None, str], list[int]] = defaultdict(list)
    for job in stale:
        if job.state == JobState.RUNNING and job.attempts in live.chords.get(job.id, ()):
            # A segmented video whose segments (or join) wait for a worker: alive, not stale.
            if jobs.renew(db_url, job.seen, lease_cut, now):
                log.info("reaper: job %s waits for its segments; lease kept", job.id)
            continue
        # A queued job's message may wait in a queue or sit with a worker for its countdown. A
        # running job's unacknowledged message is most likely held by the worker that died.
        has_message = job.id in live.waiting or (
            job.state == JobState.QUEUED and job.id in live.held
        )
        if job.state == JobState.QUEUED and has_message:
            continue
        if job.attempts >= job.max_attempts:
            if jobs.give_up(db_url, job.seen, lease_cut, now):
                reason = jobs.exhausted_reason(job.attempts, job.worker)
                log.warning("reaper: job %s failed: %s", job.id, reason)
            continue
        if jobs.requeue(db_url, job.seen, lease_cut, now) and not has_message:
            to_send[(job.kind, job.task, job.batch_id, job.params)].append(job.id)
    sent: list[int] = []
    for (kind, task, *_), ids in sorted(to_send.items(), key=lambda item: min(item[1])):
        size = settings.max_batch if kind == JobKind.NST else 1 if kind == JobKind.VIDEO else 64
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            try:
                send_jobs(app, db_url, task, chunk)
            except Exception as error:  # noqa: BLE001 - rows stay queued; the next pass retries
                log.warning("reaper: cannot send %s (%s); trying again next pass", chunk, error)
                return sent
            sent.extend(chunk)
    if sent:
        log.warning("reaper: re-sent %d stranded job(s): %s", len(sent), sent)
    return sent
