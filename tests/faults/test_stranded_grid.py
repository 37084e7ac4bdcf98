"""A grid of two sizes (`--size 32,48`) whose producer died after writing its rows and before
sending a message: the reaper finds the jobs queued with no message and sends them as the
producer would have, one parameter set per message, each under the time limit of its own work.
Every job finishes once, on its first attempt. Fast-engine jobs: the reaper groups them as it
groups Gatys jobs, and they paint in seconds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from atelier.batches import create_nst_batch, ingest_image
from atelier.db import session_scope
from atelier.schemas import NSTParams
from tests.faults import harness
from tests.faults.harness import RedisServer

pytestmark = pytest.mark.slow
SIZES = (32, 48)
GRID = [NSTParams(engine="fast", size=size) for size in SIZES]


def test_a_stranded_mixed_size_grid_is_sent_again_one_size_per_message(
    tmp_path: Path, pg_url: str, fault_redis: RedisServer, squares: list[Path]
):
    with harness.cluster(tmp_path, pg_url, fault_redis.url) as c:
        c.start_many(
            [c.worker_spec("fast-0", "fast"), c.worker_spec("reaper", "default"), c.beat_spec()]
        )
        settings = c.settings
        for run in range(1, harness.fault_runs() + 1):
            started = time.monotonic()
            with session_scope(c.db_url) as session:
                contents = [ingest_image(session, settings, squares[0]).sha256]
                style = ingest_image(session, settings, squares[-1]).sha256
            plan = create_nst_batch(settings, contents, [style], GRID, force=True)
            # ... and the producer dies here: no message is ever sent.
            harness.wait_finished(c.db_url, plan.job_ids, 60)
            rows = harness.jobs(c.db_url, plan.job_ids)
            got = harness.outcome(
                c.db_url, plan.job_ids, 0
            )  # the fast engine keeps no loss history
            seconds = time.monotonic() - started
            messages: dict[str, set[int]] = {}
            for row in rows:
                messages.setdefault(row.celery_task_id or "", set()).add(row.params["size"])
            harness.record(
                "Strand a mixed-size grid (no message sent)",
                run,
                "stranded",
                len(rows),
                got,
                seconds,
                messages=len(messages),
            )
            harness.assert_clean(got, rows, c.logs())
            assert got.attempts == [1] * len(rows), f"{got}\n{c.logs()}"
            assert not set(messages) & set(plan.task_ids), "the reaper sent nothing"
            assert sorted(map(sorted, messages.values())) == [[32], [48]], messages
