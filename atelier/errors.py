"""Errors with a meaning for the job state machine, and the one error policy of every task.

`verdict` sorts any error a job's work raises: input errors (`InputError`, and missing VGG19
weights) fail the job for good, since retrying cannot help; an outage (`outage`: the database,
the broker, the object store, ffmpeg that cannot start, a full disk or quota) gives the job back
without spending an attempt, since the same work succeeds once what it needs is back; anything
else gives it back and spends one of its attempts. `in_chain` finds the error that tells what
happened behind the one a library re-raised it as.
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Callable, Iterator


class AtelierError(Exception):
    """Base of every error Atelier raises on purpose; its message is shown to users as is."""


class InputError(AtelierError):
    """The user's input (a file, a parameter) cannot be processed. Final: never retried.

    `field` names the parameter at fault, when there is one, as the HTTP API's JSON body spells
    it (e.g. `params.style_blend`), so the API and the CLI can say which field or option to fix.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class WeightsUnavailable(AtelierError):
    """VGG19 weights could not be loaded. Final until an operator provides them."""


class JobStopped(AtelierError):
    """This attempt must stop its job's work now and write nothing more for it: the job was
    cancelled, or another attempt owns it. Tasks catch this one class; the subclasses say
    which, for what the job's row then says."""


class JobCancelled(JobStopped):
    """The job was cancelled while it ran; the worker stops at its next check."""


class LeaseLost(JobStopped):
    """Another attempt now owns the job: this one must stop without writing anything."""


class JobFailed(AtelierError):
    """Raised by a task whose jobs all failed for good, after their rows say so: the task then
    ends as FAILURE with this message, and monitors (Flower) show what the database shows."""


class WorkerStopping(AtelierError):
    """The worker was asked to stop (Ctrl-C on a command running the embedded worker): the jobs
    it holds go back to the queue, to be resumed by the next worker."""


class Outage(AtelierError):
    """Something the work needs is away for now (ffmpeg could not start, the disk is full): the
    job is given back without spending an attempt."""


class DiskFull(Outage):
    """A tool (ffmpeg) said that the disk or the quota is full, where no `OSError` says so."""


# How a tool reports a full disk in its messages (the C library's strerror texts).
DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded")
FINAL_ERRORS: tuple[type[Exception], ...] = (InputError, WeightsUnavailable)


class Verdict(enum.StrEnum):
    """What an error does to the job whose work raised it."""

    FAIL = "fail"  # for good, with the error's message: the input is wrong
    GIVE_BACK = "give back"  # to the queue, without spending an attempt: an outage
    SPEND = "spend"  # to the queue, spending an attempt (failed once none is left)


def chain(error: BaseException) -> Iterator[BaseException]:
    """`error`, then each error it was raised from or while handling (its `__cause__` or
    `__context__`, all the way down): libraries often re-raise an error as their own, keeping
    the one that tells what happened only in the chain."""
    seen: set[int] = set()
    found: BaseException | None = error
    while found is not None and id(found) not in seen:
        yield found
        seen.add(id(found))
        found = found.__cause__ or found.__context__


def in_chain(error: BaseException, match: Callable[[BaseException], bool]) -> bool:
    """Whether `error` or any error in its chain (`chain`) matches."""
    return any(match(found) for found in chain(error))


def database_away(error: BaseException) -> bool:
    """A lost or refused database connection, or a pool wait that ran out (not a bad query)."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(error, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def _broker_away(error: BaseException) -> bool:
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeout

    return isinstance(error, OperationalError | RedisConnectionError | RedisTimeout)


def _store_away(error: BaseException) -> bool:
    from atelier.storage_errors import one_transient

    return one_transient(error)


def disk_full(error: BaseException) -> bool:
    """ENOSPC or EDQUOT, a tool that said so, or an object store's answer that it is full."""
    from atelier.storage_errors import store_full

    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(error, DiskFull) or store_full(error)


# What may be away, in the order it is looked for: the first match names the outage. A full
# store counts as "disk" (it is full, not away), so it comes before the store's other answers.
OUTAGES: tuple[tuple[str, Callable[[BaseException], bool]], ...] = (
    ("disk", disk_full),
    ("database", database_away),
    ("broker", _broker_away),
    ("object store", _store_away),
    ("tool", lambda error: isinstance(error, Outage)),
)


def outage(error: BaseException) -> str | None:
    """What is away ("disk", "database", "broker", "object store", "tool") when `error`, or one
    in its chain, is an outage; None when it is not."""
    for found in chain(error):
        for what, check in OUTAGES:
            if check(found):
                return what
    return None


def verdict(error: BaseException) -> Verdict:
    """The one error policy of every task (see the module docstring)."""
    if isinstance(error, FINAL_ERRORS):
        return Verdict.FAIL
    return Verdict.GIVE_BACK if outage(error) is not None else Verdict.SPEND
