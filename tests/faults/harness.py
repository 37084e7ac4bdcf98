"""What the fault tests share: a Redis server of their own (`tests.support.servers`), a cluster
of real Atelier processes, jobs submitted the way producers do, and a record of what each run
observed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from sqlalchemy import func, select

from atelier.batches import (
    create_nst_batch,
    create_video_job,
    ingest_image,
    ingest_video,
    send_plan,
)
from atelier.celery_app import create_app
from atelier.db import migrate, session_scope
from atelier.models import Asset, FrameStat, Job, JobState, LossRecord
from atelier.schemas import NSTParams, VideoParams
from atelier.settings import Settings
from tests.support.procs import atelier_process, stop_all, wait_for_log
from tests.support.servers import RedisServer as RedisServer  # the fault tests' Redis
from tests.support.servers import have_redis_server as have_redis_server
from tests.support.servers import private_redis as private_redis

SUMMARY_ENV = "ATELIER_FAULTS_SUMMARY"
RUNS_ENV = "ATELIER_FAULT_RUNS"
T = TypeVar("T")


def fault_runs() -> int:
    """How many times each scenario repeats its fault (ATELIER_FAULT_RUNS, default 1)."""
    return max(1, int(os.environ.get(RUNS_ENV, "1")))


@dataclass
class Cluster:
    """Settings shared by the test (the producer) and the processes it starts.

    The lease and heartbeat are short so a dead worker's job is taken over within seconds.
    """

    folder: Path
    db_url: str
    broker_url: str
    extra: dict[str, str] = field(default_factory=dict)
    stack: ExitStack = field(default_factory=ExitStack)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            "ATELIER_DATABASE_URL": self.db_url,
            "ATELIER_BROKER_URL": self.broker_url,
            "ATELIER_DATA_DIR": str(self.folder / "data"),
            "ATELIER_VGG_WEIGHTS": "none",
            "ATELIER_LEASE_SECONDS": "5",
            "ATELIER_HEARTBEAT_SECONDS": "0.5",
            "ATELIER_REAPER_INTERVAL": "1",
            "ATELIER_REQUEUE_GRACE_SECONDS": "3",
            **self.extra,
        }

    @property
    def settings(self) -> Settings:
        env = self.env
        return Settings(
            database_url=env["ATELIER_DATABASE_URL"],
            broker_url=env["ATELIER_BROKER_URL"],
            data_dir=Path(env["ATELIER_DATA_DIR"]),
            vgg_weights="none",
            max_batch=int(env.get("ATELIER_MAX_BATCH", "4")),
            time_limit_scale=float(env.get("ATELIER_TIME_LIMIT_SCALE", "1")),
        )

    def start(self, name: str, args: Sequence[str], ready: str) -> subprocess.Popen[bytes]:
        return self.start_many([(name, args, ready)])[0]

    def start_many(
        self, specs: Sequence[tuple[str, Sequence[str], str]]
    ) -> list[subprocess.Popen[bytes]]:
        """Start several processes at once and wait until each says it is ready: starting them
        one after the other would add their start-up times."""
        procs = []
        for name, args, _ready in specs:
            log = self.folder / f"{name}.log"
            procs.append(self.stack.enter_context(atelier_process(list(args), self.env, log, None)))
        self.procs.extend(procs)
        for proc, (name, _args, ready) in zip(procs, specs, strict=True):
            wait_for_log(self.folder / f"{name}.log", ready, 120, proc)
        return procs

    @staticmethod
    def worker_spec(name: str, queues: str, *options: str) -> tuple[str, list[str], str]:
        """`atelier worker` on `queues`, named `name`, with more `options` (`-c 2`)."""
        return name, ["worker", "--queues", queues, "--hostname", f"{name}@%h", *options], " ready."

    @staticmethod
    def beat_spec() -> tuple[str, list[str], str]:
        return "beat", ["beat"], "beat: reaper"

    def worker(self, name: str, queues: str) -> subprocess.Popen[bytes]:
        return self.start(*self.worker_spec(name, queues))

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def logs(self) -> str:
        """The tail of every process log, for assertion messages."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.folder.glob("*.log"))
        )


@contextmanager
def cluster(folder: Path, db_url: str, broker_url: str, **extra: str) -> Iterator[Cluster]:
    migrate(db_url)
    made = Cluster(folder, db_url, broker_url, dict(extra))
    with made.stack:
        try:
            yield made
        finally:
            stop_all(made.procs)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group: no cleanup, no ack, no last heartbeat."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def holder(job_row: Job, procs: Sequence[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """The worker process running `job_row` (a worker names itself `node:pid` on the row, the
    pid of the pool process that runs the task: the worker's own, or a prefork child's)."""
    pid = int((job_row.worker or "").rsplit(":", 1)[-1])
    found = [proc for proc in procs if pid in (proc.pid, *child_pids(proc.pid))]
    assert found, f"job {job_row.id} is held by {job_row.worker}, none of this test's workers"
    return found[0]


def child_pids(pid: int) -> list[int]:
    """The pids of process `pid`'s children (forked by any of its threads), from /proc (Linux)."""
    found = []
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in children.read_text().split()]
        except OSError:  # the thread has just ended
            continue
    return found


def cut_clip(source: Path, target: Path, start: float, seconds: float) -> Path:
    """A short clip of `source` (re-encoded, so it starts on a key frame), audio kept."""
    import imageio_ffmpeg

    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-ss",
            str(start),
            "-t",
            str(seconds),
            "-i",
            str(source),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            str(target),
        ],
        check=True,
        timeout=60,
    )
    return target


def submit_nst(
    c: Cluster, contents: Sequence[Path], styles: Sequence[Path], params: NSTParams
) -> list[int]:
    settings = c.settings
    with session_scope(c.db_url) as session:
        content_shas = [ingest_image(session, settings, p).sha256 for p in contents]
        style_shas = [ingest_image(session, settings, p).sha256 for p in styles]
    plan = create_nst_batch(settings, content_shas, style_shas, params, source="faults", force=True)
    send_plan(create_app(settings), settings, plan)
    return plan.job_ids


def submit_video(c: Cluster, video: Path, params: VideoParams) -> int:
    return submit_videos(c, video, [params])[0]


def submit_videos(c: Cluster, video: Path, params: Sequence[VideoParams]) -> list[int]:
    """One job per `params` on `video`, their messages sent one right after the other (in this
    order) once every row is written, so a busy worker finds them all queued."""
    settings = c.settings
    with session_scope(c.db_url) as session:
        sha = ingest_video(session, settings, video).sha256
    plans = [create_video_job(settings, sha, each, source="faults") for each in params]
    app = create_app(settings)
    for plan in plans:
        send_plan(app, settings, plan)
    return [plan.job_ids[0] for plan in plans]


def job(db_url: str, job_id: int) -> Job:
    with session_scope(db_url) as session:
        row = session.get(Job, job_id)
        assert row is not None, f"no job {job_id}"
        return row


def jobs(db_url: str, job_ids: Sequence[int]) -> list[Job]:
    with session_scope(db_url) as session:
        return list(session.scalars(select(Job).where(Job.id.in_(job_ids)).order_by(Job.id)))


def all_finished(db_url: str, job_ids: Sequence[int]) -> bool:
    return all(JobState(row.state).finished for row in jobs(db_url, job_ids))


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `check` until it returns something true; a deadline, not a timed assertion: it only
    bounds how long a broken system is waited for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")


def wait_running(db_url: str, job_id: int, low: float, high: float, timeout: float) -> Job:
    """The job's row once it runs with progress in [low, high] (as its heartbeats report it),
    so a fault lands part way through the job; fails if the job finished first."""

    def check() -> Job | bool:
        row = job(db_url, job_id)
        if row.state == JobState.RUNNING and low <= row.progress <= high:
            return row
        return JobState(row.state).finished

    found = wait_for(check, timeout, f"job {job_id} to run")
    assert isinstance(found, Job), f"job {job_id} finished before the fault could reach it"
    return found


def wait_finished(db_url: str, job_ids: Sequence[int], timeout: float) -> None:
    wait_for(lambda: all_finished(db_url, job_ids), timeout, f"jobs {list(job_ids)} to finish")


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed while we looked
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of process `pid`'s sockets, read from /proc (Linux)."""
    inodes = _socket_inodes(pid)
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[9] in inodes:
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


def _admin_url(db_url: str) -> str:
    return db_url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def table_locked(db_url: str, table: str) -> Iterator[None]:
    """Hold an exclusive lock on `table` (as a long migration or `VACUUM FULL` would): anyone
    who reads or writes it waits, inside the database, until the block ends."""
    with psycopg.connect(_admin_url(db_url)) as conn:
        conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            conn.rollback()


def waiting_on_locks(db_url: str) -> list[int]:
    """The server pids of this database's connections waiting for a lock."""
    with psycopg.connect(_admin_url(db_url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        ).fetchall()
    return [pid for (pid,) in rows]


def terminate_backends(db_url: str, pid: int) -> int:
    """`pg_terminate_backend` every connection process `pid` holds to the database; returns how
    many were terminated."""
    ports = sorted(local_ports(pid))
    if not ports:
        return 0
    with psycopg.connect(_admin_url(db_url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND client_port = ANY(%s)"
            " AND pid <> pg_backend_pid()",
            (ports,),
        ).fetchall()
    return sum(1 for (done,) in rows if done)


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
