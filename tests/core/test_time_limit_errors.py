"""A soft time limit is recognised however it surfaces, so the job fails as a time limit (with
the limit in its message) instead of being retried as a transient error."""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from workers.tasks.settle import at_time_limit


def _driver_failing_while_unwinding() -> OperationalError:
    """What the fault test saw: the limit interrupted a query, and the rollback after it failed
    ("another command is already in progress")."""
    try:
        try:
            raise SoftTimeLimitExceeded()
        except SoftTimeLimitExceeded:
            raise OperationalError("ROLLBACK", {}, Exception("command in progress"))  # noqa: B904
    except OperationalError as error:
        return error


def test_the_limit_itself_and_errors_raised_while_handling_it_are_the_time_limit():
    assert at_time_limit(SoftTimeLimitExceeded())
    assert at_time_limit(_driver_failing_while_unwinding())


def test_other_errors_are_not():
    assert not at_time_limit(OperationalError("SELECT 1", {}, Exception("server closed")))
    assert not at_time_limit(RuntimeError("boom"))
