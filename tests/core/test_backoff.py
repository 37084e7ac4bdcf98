"""Retries after an outage are spread out: the pauses are drawn at random, not the same for
every process that met the outage at the same moment."""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from atelier.backoff import FIRST_PAUSE, jittered, retry_while_away

log = logging.getLogger("tests.backoff")


def test_a_jittered_pause_is_spread_over_its_upper_half():
    pauses = [jittered(8.0) for _ in range(4000)]
    assert min(pauses) >= 4.0 and max(pauses) <= 8.0
    quarters = [sum(4.0 + q <= p < 5.0 + q for p in pauses) for q in range(4)]
    assert all(share > 4000 / 4 * 0.8 for share in quarters), quarters  # about uniform


def test_callers_that_met_one_outage_retry_at_different_moments(caplog: pytest.LogCaptureFixture):
    """32 callers whose first call fails at once, as when the database goes away: each logs the
    pause it waits, and the pauses differ."""

    def caller(_: int) -> str:
        calls = []

        def call() -> str:
            calls.append(1)
            if len(calls) == 1:
                raise ConnectionError("server closed the connection")
            return "done"

        return retry_while_away(
            call, lambda e: isinstance(e, ConnectionError), 10, "write", "database", log
        )

    with caplog.at_level(logging.WARNING), ThreadPoolExecutor(32) as pool:
        assert list(pool.map(caller, range(32))) == ["done"] * 32
    pauses = [float(p) for p in re.findall(r"retrying in ([\d.]+) s", caplog.text)]
    assert len(pauses) == 32
    assert all(FIRST_PAUSE / 2 <= p <= FIRST_PAUSE for p in pauses)
    assert len(set(pauses)) >= 16, pauses


def test_a_job_given_back_waits_a_jittered_doubling_delay():
    """The delay before a job given back by an error runs again doubles with its attempt, up to
    a minute, and is drawn from the upper half of that, so jobs failed together come back apart."""
    from workers.tasks.settle import LONGEST_BACKOFF, backoff

    for attempt in (1, 2, 3, 8):
        longest = min(LONGEST_BACKOFF, 2.0**attempt)
        delays = [backoff(attempt) for _ in range(500)]
        assert all(longest / 2 <= d <= longest for d in delays), attempt
        assert len({round(d, 3) for d in delays}) > 100, attempt
