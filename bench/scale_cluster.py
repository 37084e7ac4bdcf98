"""The deployment `bench.scale` measures: its worker processes, started as the steps need
them, the producer's side that sends them jobs, and the benchmark's own connection to the
database, which follows the jobs and reads the database's CPU time. A step's rate counts only
what finished while every process was busy (`busy_rate`)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg

from atelier.celery_app import PING, create_app
from atelier.models import JobState
from atelier.settings import Settings
from atelier.submit import create_ping_job, new_task_id, send_jobs
from tests.support.procs import atelier_process, stop_all, wait_for_log


@dataclass(frozen=True)
class Rate:
    """What `processes` processes sustained together: `count` finished in `seconds` while all
    were busy; `db_cpu_ms`: the database's CPU per job or heartbeat over the whole step."""

    processes: int
    count: int
    seconds: float
    db_cpu_ms: float | None

    @property
    def per_second(self) -> float:
        return self.count / self.seconds


def busy_rate(finished: Sequence[tuple[str, datetime]]) -> tuple[int, float]:
    """(count, seconds) of the `(process, finished_at)` rows that finished while every process
    was busy: after the last process's first and up to the first process's last."""
    by_process: dict[str, list[datetime]] = {}
    for process, at in finished:
        by_process.setdefault(process, []).append(at)
    start = max(min(times) for times in by_process.values())
    end = min(max(times) for times in by_process.values())
    count = sum(1 for _, at in finished if start < at <= end)
    seconds = (end - start).total_seconds()
    if count == 0 or seconds <= 0:
        raise ValueError(f"too few jobs for {len(by_process)} processes to be busy together")
    return count, seconds


class Database:
    """A connection of the benchmark's own to the database: it follows the jobs and reads the
    CPU time of the database's other server processes, leaving out its own."""

    def __init__(self, db_url: str) -> None:
        admin = db_url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.conn = psycopg.connect(admin, autocommit=True)

    def close(self) -> None:
        self.conn.close()

    def cpu(self) -> dict[int, int] | None:
        """Nanoseconds of CPU of each server process serving another client of this database,
        from /proc/PID/schedstat; None when they cannot be read here (PostgreSQL on another
        host or in another container)."""
        pids = self.conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchall()
        found = {}
        for (pid,) in pids:
            proc = Path(f"/proc/{pid}")
            try:
                if not proc.joinpath("comm").read_text().startswith("postgres"):
                    return None  # another process of that number: PostgreSQL is elsewhere
                found[pid] = int(proc.joinpath("schedstat").read_text().split()[0])
            except FileNotFoundError:
                continue  # it has just ended, or it is elsewhere (then none is found)
            except (OSError, ValueError, IndexError):
                return None
        return found if found or not pids else None

    @staticmethod
    def cpu_seconds(before: dict[int, int] | None, after: dict[int, int] | None) -> float | None:
        """CPU seconds spent between two readings (a server process that ended in between is
        missed: the workers keep theirs)."""
        if before is None or after is None:
            return None
        return sum(ns - before.get(pid, 0) for pid, ns in after.items()) / 1e9

    def finished(self, job_ids: Sequence[int], timeout: float) -> list[tuple[str, datetime]]:
        """Wait until every job has succeeded; their (process, finished_at)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.conn.execute(
                "SELECT state, worker, finished_at FROM jobs WHERE id = ANY(%s)", (list(job_ids),)
            ).fetchall()
            states = {state for state, _, _ in rows}
            if states == {JobState.SUCCEEDED}:
                return [(worker, at) for _, worker, at in rows]
            if states & {JobState.FAILED, JobState.CANCELLED}:
                raise RuntimeError(f"a job did not succeed: {rows}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs unfinished after {timeout:.0f} s")
            time.sleep(0.25)


class Workers:
    """`atelier worker` processes on the `default` queue, started as the steps need them, and
    the producer's side of the same deployment."""

    def __init__(self, stack: ExitStack, folder: Path, settings: Settings) -> None:
        self.stack, self.folder, self.settings = stack, folder, settings
        self.db_url = settings.resolved_database_url
        self.env = {
            "ATELIER_DATABASE_URL": self.db_url,
            "ATELIER_BROKER_URL": settings.resolved_broker_url,
            "ATELIER_DATA_DIR": str(settings.resolved_data_dir),
        }
        self.app = create_app(settings)
        self.db = Database(self.db_url)
        stack.callback(self.db.close)
        self.names: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def grow(self, count: int) -> None:
        """Start workers until there are `count`, all at once; wait until each is ready and
        has run a job (its first connections to the database are made outside the steps)."""
        started = []
        for index in range(len(self.names), count):
            name = f"bench-{index}@scale"
            log = self.folder / f"worker-{index}.log"
            args = ["worker", "--queues", "default", "--hostname", name]
            proc = self.stack.enter_context(atelier_process(args, self.env, log, None))
            started.append((log, proc))
            self.names.append(name)
            self.procs.append(proc)
        self.stack.callback(stop_all, self.procs)  # at the end every worker stops at once
        for log, proc in started:
            wait_for_log(log, " ready.", 300, proc)
        waiting = set(self.names)
        for _ in range(100):
            ran = self.db.finished(self.send_pings(len(self.names)), 300)
            waiting -= {worker.rsplit(":", 1)[0] for worker, _ in ran}
            if not waiting:
                return
        raise RuntimeError(f"{sorted(waiting)} ran no ping job")

    def send_pings(self, count: int) -> list[int]:
        """`count` ping jobs, one message each, sent as `atelier ping` sends one."""
        ids = []
        for _ in range(count):
            task_id = new_task_id()
            ids.append(create_ping_job(self.db_url, task_id=task_id))
            send_jobs(self.app, self.db_url, PING, ids[-1:], task_id=task_id)
        return ids

    def consume(self, queue: str, names: Sequence[str], on: bool) -> None:
        """Make `names` start (or stop) consuming `queue`, and wait until every one has."""
        control = self.app.control.add_consumer if on else self.app.control.cancel_consumer
        replies = control(queue, destination=list(names), reply=True, timeout=60)
        if len(replies) != len(names):
            raise RuntimeError(f"{queue}: {len(replies)} of {len(names)} workers answered")

    def run(self, queue: str, count: int, job_ids: Sequence[int]) -> Rate:
        """Let the first `count` workers consume the filled `queue` until its jobs are done."""
        before = self.db.cpu()
        self.consume(queue, self.names[:count], on=True)
        finished = self.db.finished(job_ids, 600)
        cpu = Database.cpu_seconds(before, self.db.cpu())
        done, seconds = busy_rate(finished)
        return Rate(count, done, seconds, None if cpu is None else cpu * 1000 / len(job_ids))
