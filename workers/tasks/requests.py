"""What a worker's main process does for a job task whose process it killed.

At a task's hard time limit Celery kills the pool process running it and starts another; that
process can no longer settle its jobs, so they would stay `running` until their lease ran out
and the reaper re-sent them, to hang again. `JobRequest`, the request class of every job task
(Celery's documented extension point, `Task.Request`), fails them instead, with a message
saying why, as soon as the process is gone. It runs in the worker's main process, which knows
which process ran the task: only jobs still held by that process (`node:pid` on the row) or by
that attempt (a video's segments and join) are failed, so a job another worker has taken over
since is left alone.
"""

from __future__ import annotations

import logging
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
        failed = fail_jobs_of(self.name, self.args, f"{self.hostname}:{self.worker_pid}", reason)
        log.error("task %s[%s]: jobs %s %s", self.name, self.id, failed, reason)


def fail_jobs_of(task_name: str, args: Any, worker: str, reason: str) -> list[int]:
    """Fail the jobs that the killed run of `task_name` with `args` held; returns their ids."""
    db_url = get_settings().resolved_database_url
    if task_name in (VIDEO_SEGMENT, VIDEO_JOIN):
        # segment(job_id, attempt, index, start, end); join(parts, job_id, attempt)
        job_id, attempt = args[:2] if task_name == VIDEO_SEGMENT else args[1:3]
        lease = jobs.Lease(db_url, job_id, attempt, worker)
        return [job_id] if jobs.fail(lease, reason) else []
    return jobs.fail_held(db_url, args[0], worker, reason)


class JobTask(Task):
    """The base of every job task: its requests are `JobRequest`s."""

    Request = JobRequest
