"""What every job task does around its real work: claim, heartbeat, progress, finish or fail.

An error settles its jobs by the one error policy (`workers.tasks.settle`); the leases of work
that reports nothing for a while are renewed by the lease keeper (`workers.tasks.leases`).

A worker asked to stop (`STOP`, set when the user stops a command that runs the embedded worker)
stops its jobs at their next progress report and gives them back to the queue with a message
each, so the next worker resumes them at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from celery import Task
from celery.exceptions import Ignore
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from atelier import jobs
from atelier.assets import record_asset
from atelier.db import session_scope
from atelier.errors import JobFailed, JobStopped, WorkerStopping
from atelier.models import Job, JobState
from atelier.settings import Settings
from atelier.storage import Storage, open_storage
from atelier.submit import job_states, send_jobs
from workers.tasks.leases import keep_leases
from workers.tasks.settle import at_time_limit, settle_error, time_limit_reason

log = logging.getLogger(__name__)
# What a broker or result backend that went away raises from a progress update.
MONITORING_ERRORS = (RedisError, KombuOperationalError, OSError)
CANCELLED = "CANCELLED"  # the Celery state of a task whose jobs were all cancelled
STOP = threading.Event()  # the worker is stopping: running jobs go back to the queue


@dataclass
class JobContext:
    """A claimed job and the means to report on it, throttled so the DB is not flooded."""

    task: Task
    lease: jobs.Lease
    job: Job
    settings: Settings
    storage: Storage
    started: float = field(default_factory=time.monotonic)
    _last_beat: float = 0.0
    _last_state: float = 0.0
    _pending_losses: list[Sequence[float]] = field(default_factory=list)

    def report(
        self,
        progress: float,
        meta: dict[str, Any],
        losses: Iterable[Sequence[float]] = (),
        force: bool = False,
    ) -> None:
        """Queue history rows; every `heartbeat_seconds`, write them with progress and renew
        the lease.

        Raises JobCancelled / LeaseLost (from the heartbeat) so the engine stops promptly, and
        WorkerStopping once the worker is asked to stop.
        """
        self._pending_losses.extend(losses)
        if STOP.is_set():
            raise WorkerStopping("the worker was stopped")
        now = time.monotonic()
        if now - self._last_state >= 0.5 or force:
            self._last_state = now
            state = {"job_id": self.lease.job_id, "attempt": self.lease.attempt}
            self._publish({**state, "progress": progress, **meta})
        if now - self._last_beat >= self.settings.heartbeat_seconds or force:
            self.flush(progress, meta)

    def _publish(self, state: dict[str, Any]) -> None:
        """Progress for monitors, best effort: the database heartbeat is the record, so a broker
        or result backend that is away (a Redis restart) must not stop the job."""
        try:
            self.task.update_state(state="PROGRESS", meta=state)
            if not self.task.request.is_eager:
                # Monitors (Flower) follow tasks through events, not the result backend: this
                # event shows the task as PROGRESS there, with the same meta as its result.
                self.task.send_event("task-progress", result=state)
        except MONITORING_ERRORS as error:
            log.warning("job %s: progress not published (%s)", self.lease.job_id, error)

    def flush(self, progress: float | None = None, meta: dict[str, Any] | None = None) -> None:
        self._last_beat = time.monotonic()
        jobs.heartbeat(self.lease, progress, meta, self._pending_losses)
        self._pending_losses.clear()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def store_result(self, png: bytes, width: int, height: int) -> int:
        """Store a result image completely and record its asset; returns the asset id, for
        `jobs.succeed` (the job is marked done only once its file is whole)."""
        stored = self.storage.put_bytes(png)
        with session_scope(self.lease.db_url) as session:
            asset = record_asset(
                session,
                stored,
                kind="result",
                media_type="image/png",
                width=width,
                height=height,
                label=f"job {self.lease.job_id}",
            )
            return asset.id


def worker_name(task: Task) -> str:
    return f"{task.request.hostname or 'local'}:{os.getpid()}"


def claim_jobs(task: Task, job_ids: Sequence[int], settings: Settings) -> list[JobContext]:
    """Claim every job of the message that still needs doing; retry later if one is busy or
    its identical twin is running.

    A stopping worker claims nothing: it puts the message back for the next worker.
    """
    if STOP.is_set():
        send_jobs(task.app, settings.resolved_database_url, task.name, job_ids)
        return []
    storage = open_storage(settings)
    contexts: list[JobContext] = []
    busy: list[int] = []
    for job_id in job_ids:
        got = jobs.claim(
            settings.resolved_database_url,
            job_id,
            worker_name(task),
            settings.lease_seconds,
            task_id=task.request.id,
        )
        if got.outcome is jobs.ClaimOutcome.CLAIMED:
            assert got.lease is not None and got.job is not None
            log.info("job %s: claimed, attempt %s", job_id, got.lease.attempt)
            contexts.append(JobContext(task, got.lease, got.job, settings, storage))
        elif got.outcome is jobs.ClaimOutcome.BUSY:
            busy.append(job_id)
        elif got.outcome is jobs.ClaimOutcome.TWIN:
            # Its twin's success completes it; this message is for a twin that fails instead.
            log.info("job %s: identical work is running as another job; waiting for it", job_id)
            busy.append(job_id)
        else:
            log.info("job %s: %s, nothing to do", job_id, got.outcome.value)
    if busy:
        # Another attempt holds a fresh lease (perhaps a worker that just died). Look again
        # once the lease would have expired, so the job cannot be lost with this message.
        log.info("jobs %s are held by another attempt; checking again later", busy)
        send_jobs(task.app, settings.resolved_database_url, task.name, busy, settings.lease_seconds)
    elif not contexts:  # e.g. jobs cancelled while queued: the task says so too
        _end_task_as_jobs_ended(task, settings.resolved_database_url, list(job_ids))
    return contexts


def run_claimed(
    contexts: list[JobContext], work: Callable[[list[JobContext]], None]
) -> dict[str, Any]:
    """Run `work` on claimed jobs and settle each job's row according to what happened. The
    task's result (what Flower shows) names the jobs it claimed and the attempt of each."""
    if not contexts:
        return {"claimed": []}
    ids = [ctx.lease.job_id for ctx in contexts]
    started = time.monotonic()
    try:
        with _keep_leases(contexts):
            work(contexts)
        log.info("jobs %s finished in %.1f s", ids, time.monotonic() - started)
    except JobStopped:
        _log_why_stopped(contexts)
    except WorkerStopping:
        _give_back(contexts)
    except Exception as error:  # noqa: BLE001 - settled by the error policy
        if at_time_limit(error):  # the soft time limit, however it surfaced
            _fail_at_time_limit(contexts)
        else:
            task = contexts[0].task
            settle_error(task, [(c.lease, c.job.max_attempts) for c in contexts], error, task.name)
    _end_task_as_jobs_ended(contexts[0].task, contexts[0].lease.db_url, ids)
    return {
        "claimed": ids,
        "attempts": {str(ctx.lease.job_id): ctx.lease.attempt for ctx in contexts},
    }


def _log_why_stopped(contexts: list[JobContext]) -> None:
    """Say why each job's work stopped as its row tells it (cancelled, or this attempt's lease
    lost to another), not as the work guessed: an engine stops the same way for both."""
    rows = job_states(contexts[0].lease.db_url, [ctx.lease.job_id for ctx in contexts])
    for ctx in contexts:
        job_id, attempt = ctx.lease.job_id, ctx.lease.attempt
        row = rows.get(job_id)
        if row is None:
            log.warning("job %s: attempt %s stopped; the job's row is gone", job_id, attempt)
        elif row.state == JobState.CANCELLED:
            log.info("job %s: cancelled; attempt %s stopped", job_id, attempt)
        elif row.attempts != attempt:
            log.warning(
                "job %s: attempt %s lost its lease to attempt %s (the job is %s); stopped "
                "without writing",
                job_id,
                attempt,
                row.attempts,
                row.state,
            )
        else:
            log.info("job %s: attempt %s stopped (the job is %s)", job_id, attempt, row.state)


def _fail_at_time_limit(contexts: list[JobContext]) -> None:
    """Fail the jobs of work stopped by its soft time limit: a retry would only run as long."""
    reason = time_limit_reason(contexts[0].task)
    for ctx in contexts:
        jobs.fail(ctx.lease, reason)
    log.warning("jobs %s: %s", [ctx.lease.job_id for ctx in contexts], reason)


def _end_task_as_jobs_ended(task: Task, db_url: str, ids: list[int]) -> None:
    """The task's Celery state tells what happened to its jobs, so a monitor does not show a
    cancelled or failed job's task as SUCCESS: CANCELLED when every job was cancelled, FAILURE
    (JobFailed, with the jobs' messages) when every job failed for good. Anything else (done,
    handed back for a retry, taken over by another attempt) ends as SUCCESS.

    CANCELLED is a custom state, not Celery's REVOKED: monitors rank REVOKED as coming before
    a custom state such as PROGRESS and would keep showing the task as in progress."""
    rows = job_states(db_url, ids).values()
    if rows and all(job.state == JobState.CANCELLED for job in rows):
        if not task.request.is_eager:
            meta = {"job_ids": ids, "reason": "cancelled"}
            task.update_state(state=CANCELLED, meta=meta)  # the result backend
            task.send_event("task-cancelled", result=meta)  # Flower, which follows events
        raise Ignore()  # no success event or result follows; the message is acknowledged
    if rows and all(job.state == JobState.FAILED for job in rows):
        raise JobFailed("; ".join(f"job {job.id}: {job.error}" for job in rows))


def _keep_leases(contexts: list[JobContext]) -> AbstractContextManager[None]:
    """Renew the claimed jobs' leases while `work` runs (see `keep_leases`), and end the work
    once none of its jobs is its own any more.

    Progress reports renew them too (the keeper then skips them), but only between iterations
    or frames: loading TensorFlow, building the model and compiling the step for a new shape
    can take longer than a short lease, and a job whose worker is alive must not be presumed
    dead and run again (each such re-run spends one of its attempts).

    Work that reports progress sees a cancel at its next report and stops by itself. Work that
    reports nothing (hung in native code, or waiting on something that never answers) would
    hold its worker for ever: when every job of the message has ended (cancelled, taken over
    by another attempt, or settled) and the work has still not returned a round later, the
    worker is asked to end the process running it (Celery's revoke with terminate; a prefork
    pool then starts a new process, while a solo pool cannot and goes on waiting).
    """
    by_lease = {ctx.lease: ctx for ctx in contexts}
    task = contexts[0].task
    task_id = task.request.id  # read here: the request is local to this (the task's) thread
    settings = contexts[0].settings

    def end_process() -> None:
        ids = [lease.job_id for lease in by_lease]
        log.warning(
            "jobs %s have all ended and their work has not returned %.1f s later: asking the"
            " worker to end process %s",
            ids,
            settings.heartbeat_seconds,
            os.getpid(),
        )
        try:
            # A connection of its own: the task's is busy (or hung) in another thread.
            with task.app.connection_for_write() as connection:
                task.app.control.revoke(
                    task_id, terminate=True, signal="SIGKILL", connection=connection
                )
        except MONITORING_ERRORS as error:  # the broker away: the time limit still holds
            log.warning("jobs %s: cannot ask the worker to end process: %s", ids, error)

    remote = task.app.conf.worker_enable_remote_control and not task.request.is_eager
    return keep_leases(
        list(by_lease),
        settings.heartbeat_seconds,
        lambda lease: time.monotonic() - by_lease[lease]._last_beat,
        on_abandoned=end_process if remote else None,
    )


def _give_back(contexts: list[JobContext]) -> None:
    """Put the jobs of a stopping worker back to `queued` with a new message: the embedded
    broker deletes a message when it is read, so without one the next worker would not see
    them until the reaper's grace period had passed."""
    ids = [ctx.lease.job_id for ctx in contexts]
    for ctx in contexts:
        jobs.release(ctx.lease, None)  # fenced: a job cancelled meanwhile stays cancelled
    task = contexts[0].task
    send_jobs(task.app, contexts[0].lease.db_url, task.name, ids)
    log.warning("jobs %s: the worker is stopping; put back in the queue", ids)
