"""How a job task settles an error, by the one error policy (`atelier.errors.verdict`) that
whole jobs, a video's segments and its join share: bad input and missing weights fail the job at
once with their message; an outage (database, broker, object store, ffmpeg that cannot start, a
full disk) gives it back to the queue without spending an attempt; anything else gives it back
and spends one, until `max_attempts` is reached. Jobs given back are sent again after a backoff
with jitter. A job that reaches its soft time limit (`atelier.limits`) fails with a message:
retrying work that hangs would only hang again.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from atelier import jobs
from atelier.backoff import jittered
from atelier.errors import AtelierError, Verdict, in_chain, outage, verdict
from atelier.submit import send_jobs

log = logging.getLogger(__name__)
LONGEST_BACKOFF = 60.0  # seconds before a job given back is sent again, at most


def at_time_limit(error: BaseException) -> bool:
    """Whether `error` is the soft time limit, or was raised while handling it: the limit can
    land inside a library that then fails as it unwinds (a database driver interrupted
    mid-query raises its own error), and that is still the time limit."""
    return in_chain(error, lambda found: isinstance(found, SoftTimeLimitExceeded))


def time_limit_reason(task: Task) -> str:
    """What a job stopped by its task's soft time limit is failed with."""
    _, soft = task.request.timelimit or (None, None)
    return (
        f"stopped at its time limit ({soft or 0:.0f} s, set from the size of the work"
        " and ATELIER_TIME_LIMIT_SCALE): it took far longer than work of its size should"
    )


def settle_error(
    task: Task,
    held: Sequence[tuple[jobs.Lease, int]],
    error: Exception,
    resend: str,
    about: str = "",
) -> None:
    """Settle the jobs of `held` (each lease with its job's `max_attempts`) after `error` by the
    error policy (`atelier.errors.verdict`), and send those given back again as task `resend`
    after a backoff with jitter, so workers that met the same outage do not all retry at once.
    `about` prefixes the error text (which segment of a video failed)."""
    ids = [lease.job_id for lease, _ in held]
    found = verdict(error)
    text = (
        f"{about}{error}"
        if isinstance(error, AtelierError)
        else (f"{about}{type(error).__name__}: {error}")
    )
    if found is Verdict.FAIL:
        for lease, _ in held:
            jobs.fail(lease, text)
        log.warning("jobs %s failed: %s", ids, text)
        return
    if found is Verdict.GIVE_BACK:
        what = outage(error)
        away = "the disk is full" if what == "disk" else f"the {what} is unavailable"
        log.warning("jobs %s: %s (%s); given back without spending an attempt", ids, away, text)
    else:
        log.error("jobs %s: %s\n%s", ids, text, traceback.format_exc())
    again = []
    for lease, max_attempts in held:
        if found is Verdict.SPEND and lease.attempt >= max_attempts:
            jobs.fail(lease, f"failed after {lease.attempt} attempts: {text}")
        elif jobs.release(lease, text, spent=found is Verdict.SPEND):
            again.append(lease.job_id)
    if again:
        try:
            send_jobs(task.app, held[0][0].db_url, resend, again, backoff(held[0][0].attempt))
        except Exception as failed:
            if outage(failed) is None:
                raise
            log.warning("jobs %s: not sent again (%s); the reaper will", again, failed)


def backoff(attempt: int) -> float:
    """Seconds before a job given back after attempt `attempt` is sent again: doubling with
    each attempt up to `LONGEST_BACKOFF`, drawn between half and all of that (jitter)."""
    return jittered(min(LONGEST_BACKOFF, 2.0**attempt))
