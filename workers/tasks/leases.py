"""The lease keeper: a thread that renews a job's lease while work that reports nothing for a
while (loading a model, compiling a step, an ffmpeg run) goes on, so a live worker's job is not
taken for dead and run again."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from atelier import jobs
from atelier.errors import JobStopped

log = logging.getLogger(__name__)


@contextmanager
def keep_leases(
    leases: Sequence[jobs.Lease],
    every: float,
    quiet_for: Callable[[jobs.Lease], float] = lambda _lease: float("inf"),
    on_abandoned: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Renew `leases` every `every` seconds from a thread while the block runs.

    A lease renewed by other means less than `every` seconds ago (`quiet_for`) is skipped. A
    killed worker's thread dies with it, so its leases still run out. A lease that is lost,
    cancelled or settled (the job finished) is no longer renewed; the work sees the first two
    at its next write. Once no lease is left and the block is still running a round later,
    `on_abandoned` is called (once).
    """
    done = threading.Event()
    held = list(leases)

    def renew() -> None:
        while held and not done.wait(every):
            for lease in list(held):
                if quiet_for(lease) < every:
                    continue  # a progress report has just renewed it (and written its rows)
                try:
                    jobs.heartbeat(lease)
                except JobStopped:
                    held.remove(lease)
                except Exception as error:  # noqa: BLE001 - e.g. the database away: next round
                    log.warning("job %s: cannot renew the lease: %s", lease.job_id, error)
        if on_abandoned is not None and not done.wait(every):
            on_abandoned()

    thread = threading.Thread(target=renew, name="lease-keeper", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
