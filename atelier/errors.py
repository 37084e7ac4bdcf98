"""Errors with a meaning for the job state machine.

A worker decides from the exception's class whether a job failed for good (the input or the
parameters are wrong: retrying cannot help) or whether the attempt may be retried; `in_chain`
finds the error that tells what happened behind the one a library re-raised it as.
"""

from __future__ import annotations

from collections.abc import Callable


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


class JobCancelled(AtelierError):
    """The job was cancelled while it ran; the worker stops at its next check."""


class LeaseLost(AtelierError):
    """Another attempt now owns the job: this one must stop without writing anything."""


class JobFailed(AtelierError):
    """Raised by a task whose jobs all failed for good, after their rows say so: the task then
    ends as FAILURE with this message, and monitors (Flower) show what the database shows."""


class WorkerStopping(AtelierError):
    """The worker was asked to stop (Ctrl-C on a command running the embedded worker): the jobs
    it holds go back to the queue, to be resumed by the next worker."""


def in_chain(error: BaseException, match: Callable[[BaseException], bool]) -> bool:
    """Whether `error` or any error it was raised from or while handling (its `__cause__` or
    `__context__`, all the way down) matches: libraries often re-raise an error as their own,
    keeping the one that tells what happened only in the chain."""
    seen: set[int] = set()
    found: BaseException | None = error
    while found is not None and id(found) not in seen:
        if match(found):
            return True
        seen.add(id(found))
        found = found.__cause__ or found.__context__
    return False
