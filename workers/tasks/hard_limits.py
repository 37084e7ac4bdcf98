"""What a worker's main process does for a job task whose process it killed.

At a task's hard time limit Celery kills the pool process running it and starts another; that
process can no longer settle its jobs, so they would stay `running` until their lease ran out
and the reaper re-sent them, to hang again. `JobRequest`, the request class of every job task
(Celery's documented extension point, `Task.Request`), fails them instead, with a message
saying why, as soon as the process is gone. It runs in the worker's main process, which knows
which process ran the task: only the attempts that run claimed are failed (a job task's: the
job's current attempt, recorded with that process's `node:pid` and that task id; a video's
segments and join: the attempt they name), so a job another attempt has taken over since is left
alone, whichever process holds it.

Celery calls `on_timeout` in the main process's event loop, and kills the process only once it
returns; the database write, retried across an outage for up to `ATELIER_DB_RETRY_SECONDS`, would
hold up the whole worker (no new messages taken, the hung process not yet killed) for as long.
So the write runs in a thread of its own and `on_timeout` returns at once. Should the write fail
for good, the job's lease lapses and the reaper takes it over.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Task
from celery.worker import state as worker_state
from celery.worker.request import Request

from atelier import jobs
from atelier.celery_app import VIDEO_JOIN, VIDEO_SEGMENT
from atelier.settings import get_settings

log = logging.getLogger(__name__)


class JobRequest(Request):
    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        if soft or worker_state.should_terminate:
            return  # a soft limit is the task's own to handle; a cold shutdown gives jobs back
        reason = (
            f"killed at its hard time limit ({timeout:.0f} s): the work did not end by itself"
            " (stuck in native code, or waiting on something that never answered), so the worker"
            " replaced its process"
        )
        worker = f"{self.hostname}:{self.worker_pid}"
        threading.Thread(
            target=_fail_and_say_so,
            args=(self.name, self.id, self.args, worker, reason),
            name=f"hard-limit-{self.id}",
            daemon=True,
        ).start()


def _fail_and_say_so(task_name: str, task_id: str, args: Any, worker: str, reason: str) -> None:
    try:
        failed = fail_jobs_of(task_name, task_id, args, worker, reason)
    except Exception as error:  # noqa: BLE001 - a thread's error would otherwise go unseen
        log.error(
            "task %s[%s]: %s; its jobs could not be failed (%s), the reaper takes them over "
            "once their lease lapses",
            task_name,
            task_id,
            reason,
            error,
        )
        return
    log.error("task %s[%s]: jobs %s %s", task_name, task_id, failed, reason)


def fail_jobs_of(task_name: str, task_id: str, args: Any, worker: str, reason: str) -> list[int]:
    """Fail the jobs that the killed run `task_id` of `task_name` with `args` held: the attempts
    it claimed (a segment or join names its attempt; a job task's are recorded with its task
    id); returns their ids."""
    db_url = get_settings().resolved_database_url
    if task_name in (VIDEO_SEGMENT, VIDEO_JOIN):
        # segment(job_id, attempt, index, start, end); join(parts, job_id, attempt)
        job_id, attempt = args[:2] if task_name == VIDEO_SEGMENT else args[1:3]
        lease = jobs.Lease(db_url, job_id, attempt, worker)
        return [job_id] if jobs.fail(lease, reason) else []
    return jobs.fail_held(db_url, args[0], worker, task_id, reason)


class JobTask(Task):
    """The base of every job task: its requests are `JobRequest`s."""

    Request = JobRequest
