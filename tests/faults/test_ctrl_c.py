"""Ctrl-C on `atelier stylize` in the embedded default (SQLite, filesystem broker, the worker in
the command): the job running stops at its next iteration, its jobs go back to `queued` (not left
`running` for a lease to run out), the command says exactly how to go on, and `atelier worker`
then finishes them. In a deployment Ctrl-C only stops the waiting, and the message says so."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from atelier.db import session_scope
from atelier.models import Job, JobState
from tests.faults.harness import (
    assert_clean,
    fault_runs,
    jobs,
    outcome,
    record,
    wait_finished,
    wait_for,
)
from tests.support.procs import ATELIER, REPO, atelier_env, atelier_process, stop
from tests.support.services import deployment_env

pytestmark = pytest.mark.slow
ITERATIONS = 60


def _stylize(env: dict[str, str], log: Path, args: list[str]) -> subprocess.Popen[bytes]:
    """`atelier stylize ARGS` as a terminal runs it: SIGINT at its default disposition even when
    this test runs in the background of a shell, which starts its jobs with SIGINT ignored (a
    Python started so never raises KeyboardInterrupt)."""
    with log.open("ab") as handle:
        return subprocess.Popen(
            ["env", "--default-signal=INT", *ATELIER, "stylize", *args],
            # A wide console, so no message is wrapped where the test reads it.
            env={**atelier_env(env), "COLUMNS": "400"},
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )


def _batch(log: Path) -> int:
    found = re.search(r"batch (\d+): \d+ job", log.read_text(errors="replace"))
    return int(found.group(1)) if found else 0


def _job_ids(db_url: str, batch_id: int) -> list[int]:
    with session_scope(db_url) as session:
        return [j.id for j in session.query(Job).filter_by(batch_id=batch_id).order_by(Job.id)]


def _interrupt(proc: subprocess.Popen[bytes], log: Path) -> tuple[int, float]:
    """Ctrl-C (SIGINT) the command; its exit code and how long it took to exit."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(90)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail(f"the command did not stop after Ctrl-C:\n{log.read_text()[-3000:]}")
    return code, time.monotonic() - sent


def test_ctrl_c_gives_the_embedded_jobs_back_and_atelier_worker_finishes_them(
    tmp_path: Path, squares: list[Path]
):
    data = tmp_path / "data"
    env = {
        "ATELIER_DATA_DIR": str(data),
        "ATELIER_VGG_WEIGHTS": "none",
        "ATELIER_HEARTBEAT_SECONDS": "0.5",
    }
    db_url = f"sqlite:///{data / 'atelier.sqlite3'}"
    for run in range(1, fault_runs() + 1):
        started = time.monotonic()
        out = tmp_path / f"out{run}"
        log = tmp_path / f"stylize-{run}.log"
        args = [str(squares[0]), "-s", str(squares[-1]), "-s", str(squares[-2])]
        args += ["--out", str(out), "--size", "32", "--iterations", str(ITERATIONS)]
        proc = _stylize(env, log, [*args, "--seed", str(run), "--force"])
        batch = wait_for(lambda log=log: _batch(log), 120, "the batch to be created")
        ids = _job_ids(db_url, batch)

        def under_way(ids: list[int] = ids) -> bool:
            return any(r.state == JobState.RUNNING and r.progress > 0 for r in jobs(db_url, ids))

        wait_for(under_way, 300, "a job to be under way", interval=0.1)
        code, stopped_in = _interrupt(proc, log)
        said = log.read_text(errors="replace")
        after = jobs(db_url, ids)
        # A run that does not finish is recorded too (as lost jobs), then fails below.
        with (
            atelier_process(["worker"], env, tmp_path / f"worker-{run}.log", " ready.", 120),
            contextlib.suppress(TimeoutError),
        ):
            wait_finished(db_url, ids, 600)
        got = outcome(db_url, ids, ITERATIONS)
        seconds = time.monotonic() - started
        record(
            "Ctrl-C on an embedded `atelier stylize`, then `atelier worker`",
            run,
            "ctrl-c",
            1,
            got,
            seconds,
            stopped_in_s=round(stopped_in, 1),
        )
        assert code == 130, said
        assert [r.state for r in after] == [JobState.QUEUED] * len(ids), (after, said)
        assert "Resume them with `atelier worker`" in said, said
        assert f"`atelier results {batch} --out {out}`" in said, said
        assert_clean(got, jobs(db_url, ids), said)
        # The stopped attempt, then the one `atelier worker` ran.
        assert got.attempts == [2] * len(ids), got


def test_ctrl_c_in_a_deployment_leaves_the_jobs_to_its_workers(tmp_path: Path, squares: list[Path]):
    with deployment_env(tmp_path) as env:
        log = tmp_path / "stylize.log"
        out = tmp_path / "out"
        args = [str(squares[0]), "-s", str(squares[-1]), "--out", str(out), "--size", "32"]
        proc = _stylize(env, log, args)
        batch = wait_for(lambda: _batch(log), 120, "the batch to be sent")
        code, _ = _interrupt(proc, log)
        said = log.read_text(errors="replace")
        assert code == 130, said
        assert f"The deployment's workers go on with batch {batch}" in said, said
        assert f"`atelier results {batch} --out {out}`" in said, said
        assert "atelier worker" not in said, said
        ids = _job_ids(env["ATELIER_DATABASE_URL"], batch)
        assert [r.state for r in jobs(env["ATELIER_DATABASE_URL"], ids)] == [JobState.QUEUED]
