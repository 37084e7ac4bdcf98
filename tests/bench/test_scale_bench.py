"""The control-plane benchmark's measuring core at its smallest: one worker process, a few ping
jobs, a fraction of a second of heartbeats and a three-image fast grid. Every step comes back
with usable figures and the report has its rows. No rate is asserted."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from bench.scale import gpu_workers_fed, measure, table
from bench.scale_cluster import busy_rate

pytestmark = pytest.mark.slow  # a real worker process


def test_measure_returns_every_step_with_usable_figures():
    scale = measure(
        processes=(1,), fast_processes=(1,), jobs_per_process=3, heartbeat_seconds=0.2,
        fast_contents=1, rounds=1,
    )  # fmt: skip
    for rates in (scale.jobs, scale.heartbeats, scale.fast):
        assert [rate.processes for rate in rates] == [1]
        rate = rates[0]
        assert rate.count >= 1 and math.isfinite(rate.per_second) and rate.per_second > 0
        assert rate.db_cpu_ms is None or rate.db_cpu_ms > 0
    text = table(scale)
    assert text.count("| 1 | ") == 2  # a control-plane row and a fast-engine row
    assert "such workers" in gpu_workers_fed(scale)


def test_the_rate_counts_only_what_finished_while_every_process_was_busy():
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def s(seconds: float) -> datetime:
        return at + timedelta(seconds=seconds)

    # a starts at 0 s; b finishes its first job at 2 s; a finishes its last at 5 s.
    rows = [("a", s(0)), ("a", s(1)), ("a", s(3)), ("a", s(5)), ("b", s(2)), ("b", s(4)),
            ("b", s(6))]  # fmt: skip
    assert busy_rate(rows) == (3, 3.0)  # at 3, 4 and 5 s: within (2 s, 5 s]
    with pytest.raises(ValueError, match="too few jobs"):
        busy_rate([("a", s(0)), ("b", s(1))])
