"""A worker told to stop gives its running jobs back instead of making the stop wait for them.

SIGTERM is how a worker is stopped in a deployment: Kubernetes ending a pod (scaling down, a
rollout, a drained node), `docker stop`, systemd. Celery's warm shutdown then waits for the tasks
running to finish, and an NST job may take many minutes, far past a pod's grace period, after
which the pod is killed and its jobs wait out their lease before they run again.

Here the worker's main process, on its way to shutting down (`worker_shutting_down`), tells the
pool processes running tasks (Celery's `active_requests` name them) with SIGUSR2 (SIGTERM is
billiard's own in a pool process: it exits there), and each pool process answers it by setting
the runner's STOP (`workers.tasks.runner`): its jobs stop at
their next progress report, go back to `queued` with a new message, and the task returns, so the
warm shutdown completes within seconds and another worker resumes the jobs at once. A task
running in the main process itself (the solo pool) sees STOP directly. Short work that reports
no progress (a video segment or join, a ping) finishes instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

from celery.signals import worker_process_init, worker_shutting_down
from celery.worker import state as worker_state

from workers.tasks.runner import STOP

STOP_SIGNAL = signal.SIGUSR2


@worker_shutting_down.connect
def _stop_running_tasks(sig: str = "", how: str = "", **_kwargs: Any) -> None:
    STOP.set()  # tasks of the solo and threads pools run in this process
    for request in list(worker_state.active_requests):
        pid = request.worker_pid
        if pid and pid != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, STOP_SIGNAL)


def _on_stop_signal(_signum: int, _frame: Any) -> None:
    STOP.set()


@worker_process_init.connect
def _give_back_on_stop_signal(**_kwargs: Any) -> None:
    """In each pool process: STOP_SIGNAL stops its jobs at their next report (see the module)."""
    signal.signal(STOP_SIGNAL, _on_stop_signal)
