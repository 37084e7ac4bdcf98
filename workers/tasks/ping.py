"""The ping job: proves producer -> broker -> worker -> database works, end to end."""

from __future__ import annotations

import os
import socket

from celery import Task, shared_task

from atelier import jobs
from atelier.celery_app import PING
from atelier.settings import get_settings
from workers.tasks.runner import JobContext, claim_jobs, run_claimed


@shared_task(name=PING, bind=True)
def ping(self: Task, job_ids: list[int]) -> dict:
    def pong(contexts: list[JobContext]) -> None:
        for ctx in contexts:
            meta = {"host": socket.gethostname(), "pid": os.getpid(), "worker": ctx.lease.worker}
            jobs.succeed(ctx.lease, None, meta, ctx.elapsed)

    return run_claimed(claim_jobs(self, job_ids, get_settings()), pong)
