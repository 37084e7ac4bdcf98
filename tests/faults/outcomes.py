"""What a fault run observed: the jobs' outcome as the database tells it, the checks every
scenario makes of it, and the summary file that FAULTS.md is rendered from
(`tests/faults/report.py`)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from atelier.db import session_scope
from atelier.models import Asset, FrameStat, Job, JobState, LossRecord

SUMMARY_ENV = "ATELIER_FAULTS_SUMMARY"
RUNS_ENV = "ATELIER_FAULT_RUNS"


def fault_runs() -> int:
    """How many times each scenario repeats its fault (ATELIER_FAULT_RUNS, default 1)."""
    return max(1, int(os.environ.get(RUNS_ENV, "1")))


def jobs(db_url: str, job_ids: Sequence[int]) -> list[Job]:
    with session_scope(db_url) as session:
        return list(session.scalars(select(Job).where(Job.id.in_(job_ids)).order_by(Job.id)))


@dataclass
class Outcome:
    """What the database says about a set of jobs after a fault."""

    jobs: int
    succeeded: int
    failed: int
    lost: int  # did not succeed: still unfinished at the end, or failed
    attempts: list[int]
    # Result assets of each job: the one its row points at and any stored under its name by
    # another attempt (identical bytes share one asset, so only differing extra results show).
    results: list[int]
    duplicate_rows: int  # history rows beyond one per iteration / frame
    incomplete: list[int]  # jobs whose history is not exactly one row per iteration / frame

    @property
    def duplicated(self) -> int:
        """Jobs done more than once: several results, or history rows written twice."""
        return sum(1 for n in self.results if n > 1) + (1 if self.duplicate_rows else 0)


def outcome(db_url: str, job_ids: Sequence[int], expect_rows: int) -> Outcome:
    """Count results and history rows. `expect_rows`: iterations of an NST job (rows 1..N) or
    frames of a video job (rows 0..N-1); 0 for jobs that keep no history (the fast engine)."""
    rows = jobs(db_url, job_ids)
    duplicates = 0
    incomplete = []
    results = []
    with session_scope(db_url) as session:
        for row in rows:
            table, key, first = (
                (FrameStat, FrameStat.frame, 0)
                if row.kind == "video"
                else (LossRecord, LossRecord.iteration, 1)
            )
            total, distinct, low, high = session.execute(
                select(
                    func.count(), func.count(func.distinct(key)), func.min(key), func.max(key)
                ).where(table.job_id == row.id)
            ).one()
            duplicates += total - distinct
            expected = (expect_rows, expect_rows, first, first + expect_rows - 1)
            if (total, distinct, low, high) != (expected if expect_rows else (0, 0, None, None)):
                incomplete.append(row.id)
            labelled = session.scalars(
                select(Asset.id).where(Asset.kind == "result", Asset.label == f"job {row.id}")
            )
            results.append(len({*labelled, row.result_asset_id} - {None}))
    states = [JobState(r.state) for r in rows]
    return Outcome(
        jobs=len(job_ids),
        succeeded=states.count(JobState.SUCCEEDED),
        failed=states.count(JobState.FAILED),
        lost=len(job_ids) - states.count(JobState.SUCCEEDED),
        attempts=[r.attempts for r in rows],
        results=results,
        duplicate_rows=duplicates,
        incomplete=incomplete,
    )


def assert_clean(got: Outcome, rows: Sequence[Job], context: str) -> None:
    """What every scenario demands: all jobs succeeded, each with one result that its row points
    at, and a history with one row per iteration / frame."""
    assert got.succeeded == got.jobs, f"{got}\n{context}"
    assert got.results == [1] * got.jobs, f"{got}\n{context}"
    assert all(r.result_asset_id is not None for r in rows), context
    assert got.duplicate_rows == 0 and got.incomplete == [], f"{got}\n{context}"


def record(
    scenario: str, run: int, fault: str, faults: int, got: Outcome, seconds: float, **figures: Any
) -> None:
    """Append what a fault run observed to the summary file (ATELIER_FAULTS_SUMMARY), if set:
    `faults` of kind `fault` (kill, restart, drop) were injected and the jobs took `seconds`
    from submission to the last one finished. Called before the test's assertions, so a failed
    run is counted too."""
    target = os.environ.get(SUMMARY_ENV)
    if not target:
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "scenario": scenario,
        "run": run,
        "at": time.time(),
        "fault": fault,
        "faults": faults,
        "seconds": round(seconds, 1),
        **asdict(got),
        "duplicated": got.duplicated,
        **figures,
    }
    with path.open("a") as out:
        out.write(json.dumps(entry) + "\n")
