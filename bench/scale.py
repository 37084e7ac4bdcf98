"""How far one control plane goes: jobs per second through one PostgreSQL and one Redis.

Real `atelier worker` processes (one pool process each, as a GPU worker runs) on one database
and one Redis, their number grown step by step (1, 2, 4, 8, 16):

- **Jobs.** Ping jobs (`atelier.ping`, what `atelier ping` sends): each is claimed with the
  compare-and-set of `atelier.jobs`, held under the lease keeper of `workers.tasks.leases` and
  marked succeeded, its message acknowledged and its result and task events sent to Redis. That
  is the whole claim-and-finish cost of a real job, with nothing in between. Before each step
  the workers stop consuming (Celery's `cancel_consumer`), the queue is filled, and they start
  again together (`add_consumer`), so filling it costs them nothing.
- **Heartbeats.** As many processes each hold a claimed job and renew its lease with
  `atelier.jobs.heartbeat` as fast as they can, each call carrying progress, meta and
  `LOSS_ROWS` loss rows, as a Gatys job's report does.
- **The fast engine.** Images per second of a fast-engine grid (every test image x 3
  paintings, 384 px, one job per message) through 1 and 2 of the same workers (`add_consumer`
  on queue `fast`).

Rates count what finished while every process was busy: from the moment the last process
finished its first job (so start-up and each process's first job are left out) to the moment
the first process finished its last. The job and heartbeat steps keep the best of `ROUNDS`
rounds, as the machine is shared. Each rate is also given as a ratio to one process in the
same run. Where PostgreSQL runs on this machine, the CPU time its server processes for the
benchmark's database spent per job or heartbeat is read from /proc (`schedstat`), which is
what the database would spend wherever the workers run.

`python -m bench.scale` writes the `scale` section of BENCHMARKS.md (needs PostgreSQL and
Redis, ATELIER_TEST_PG / ATELIER_TEST_REDIS as the tests; a few minutes); `--quick` runs 1, 2
and 4 processes and only prints.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atelier import jobs
from atelier.batches import create_nst_batch, ingest_image, send_plan
from atelier.db import migrate, session_scope
from atelier.schemas import NSTParams
from atelier.settings import Settings
from atelier.submit import create_ping_job
from bench.report import machine_line, write_section
from bench.scale_cluster import Database, Rate, Workers
from tests.support.services import fresh_postgres_database, fresh_redis_db

PROCESSES = (1, 2, 4, 8, 16)
FAST_PROCESSES = (1, 2)
ROUNDS = 2
LOSS_ROWS = 10  # per heartbeat: a Gatys job's iterations since its last report
JOB_SECONDS = 20.0  # a GPU job, for the estimate of how many GPU workers one database feeds
DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
STYLES = ("style/starry_night.jpg", "style/the_scream.jpg", "style/wave_crop.jpg")
# Every photo and painting of the test data is a content: the grid's cells all differ, so none
# waits for an identical twin running elsewhere.
CONTENTS = tuple(
    str(path.relative_to(DATA))
    for folder in ("content", "faces", "style")
    for path in sorted((DATA / folder).iterdir())
)
FAST = NSTParams(engine="fast", size=384)


@dataclass
class Scale:
    """Every step of one run."""

    jobs: list[Rate] = field(default_factory=list)
    heartbeats: list[Rate] = field(default_factory=list)
    fast: list[Rate] = field(default_factory=list)
    heartbeat_seconds: float = Settings.model_fields["heartbeat_seconds"].default  # 5 s


def ping_step(workers: Workers, jobs_per_process: int) -> Rate:
    """Fill the `default` queue with ping jobs while no worker consumes it; then let every
    worker take them."""
    workers.consume("default", workers.names, on=False)
    ids = workers.send_pings(jobs_per_process * len(workers.names))
    return workers.run("default", len(workers.names), ids)


def _heartbeats(db_url: str, job_id: int, barrier: Any, seconds: float, out: Any) -> None:
    """One process of the heartbeat step: claim `job_id`, then renew its lease with loss rows
    for `seconds` once every process is ready; put the count on `out`, and keep the connection
    until the CPU its server process spent has been read (the barrier again)."""
    lease = jobs.claim(db_url, job_id, f"heartbeats:{os.getpid()}", 3600).lease
    assert lease is not None
    jobs.heartbeat(lease, 0.0)  # connected before the clock starts
    barrier.wait()
    count, iteration, end = 0, 0, time.monotonic() + seconds
    while time.monotonic() < end:
        rows = [(iteration + i + 1, 4.0, 1.0, 2.0, 1.0) for i in range(LOSS_ROWS)]
        iteration += LOSS_ROWS
        jobs.heartbeat(lease, 0.5, {"iteration": iteration, "of": 10**9}, rows)
        count += 1
    out.put(count)
    barrier.wait()


def heartbeat_step(workers: Workers, processes: int, seconds: float) -> Rate:
    """`processes` processes renewing a lease each, as fast as they can, for `seconds`."""
    ids = [create_ping_job(workers.db_url) for _ in range(processes)]
    # Forked: a forked process starts with an empty pool (`atelier.db.get_engine`).
    context = multiprocessing.get_context("fork")
    barrier, out = context.Barrier(processes + 1, timeout=seconds + 300), context.Queue()
    procs = [
        context.Process(target=_heartbeats, args=(workers.db_url, job, barrier, seconds, out))
        for job in ids
    ]
    for proc in procs:
        proc.start()
    try:
        barrier.wait()  # every process is connected
        before = workers.db.cpu()
        total = sum(out.get(timeout=seconds + 120) for _ in procs)
        cpu = Database.cpu_seconds(before, workers.db.cpu())
        barrier.wait()  # read: they may go
    finally:
        for proc in procs:
            proc.join(30)
    return Rate(processes, total, seconds, None if cpu is None else cpu * 1000 / total)


def fast_step(workers: Workers, count: int, contents: int) -> Rate:
    """A grid of `contents` x 3 paintings of fast-engine jobs through the first `count`
    workers (each process's first job loads the network: left out of the rate)."""
    settings = workers.settings
    with session_scope(workers.db_url) as session:
        shas = [ingest_image(session, settings, DATA / p).sha256 for p in CONTENTS[:contents]]
        styles = [ingest_image(session, settings, DATA / p).sha256 for p in STYLES]
    plan = create_nst_batch(settings, shas, styles, FAST, source="bench", force=True)
    send_plan(workers.app, settings, plan)
    rate = workers.run("fast", count, plan.job_ids)
    workers.consume("fast", workers.names[:count], on=False)
    return rate


def measure(
    processes: Sequence[int] = PROCESSES,
    fast_processes: Sequence[int] = FAST_PROCESSES,
    jobs_per_process: int = 40,
    heartbeat_seconds: float = 4.0,
    fast_contents: int = len(CONTENTS),
    rounds: int = ROUNDS,
) -> Scale:
    """Every step, on a fresh database and Redis, workers added as the steps grow; the job and
    heartbeat steps keep the best of `rounds` (the machine is shared)."""
    scale = Scale()
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_postgres_database() as db,
        fresh_redis_db() as broker,
        ExitStack() as stack,
    ):
        migrate(db)
        # One job per message, so the work spreads over the workers job by job.
        data = Path(tmp) / "data"
        settings = Settings(database_url=db, broker_url=broker, data_dir=data, max_batch=1)
        workers = Workers(stack, Path(tmp), settings)
        for count in processes:
            workers.grow(count)
            scale.jobs.append(_best([ping_step(workers, jobs_per_process) for _ in range(rounds)]))
            scale.heartbeats.append(
                _best([heartbeat_step(workers, count, heartbeat_seconds) for _ in range(rounds)])
            )
            if count in fast_processes:
                scale.fast.append(fast_step(workers, count, fast_contents))
    return scale


def _best(rates: list[Rate]) -> Rate:
    return max(rates, key=lambda rate: rate.per_second)


def _ratio(rate: Rate, rates: Sequence[Rate]) -> str:
    return f"{rate.per_second / rates[0].per_second:.2f}x"


def _ms(rate: Rate) -> str:
    return "n/a" if rate.db_cpu_ms is None else f"{rate.db_cpu_ms:.2f}"


def table(scale: Scale) -> str:
    lines = [
        "| worker processes | ping jobs/s | vs 1 | database CPU ms per job | heartbeats/s | vs 1 "
        "| database CPU ms per heartbeat |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for job, beat in zip(scale.jobs, scale.heartbeats, strict=True):
        lines.append(
            f"| {job.processes} | {job.per_second:.0f} | {_ratio(job, scale.jobs)} | {_ms(job)} "
            f"| {beat.per_second:.0f} | {_ratio(beat, scale.heartbeats)} | {_ms(beat)} |"
        )
    if scale.fast:
        lines += [
            "",
            "| fast-engine worker processes | images/s (384 px) | vs 1 |",
            "|---:|---:|---:|",
        ]
        for rate in scale.fast:
            lines.append(
                f"| {rate.processes} | {rate.per_second:.2f} | {_ratio(rate, scale.fast)} |"
            )
    return "\n".join(lines)


def saturation(rates: Sequence[Rate]) -> int:
    """The fewest processes whose rate came within 10% of the best: where more stop paying."""
    best = max(rate.per_second for rate in rates)
    return min(rate.processes for rate in rates if rate.per_second >= 0.9 * best)


def gpu_workers_fed(scale: Scale) -> str:
    """How many GPU workers, each finishing a job every JOB_SECONDS and renewing its lease every
    `heartbeat_seconds`, the measured rates feed."""
    need_jobs, need_beats = 1 / JOB_SECONDS, 1 / scale.heartbeat_seconds
    best_jobs = max(rate.per_second for rate in scale.jobs)
    best_beats = max(rate.per_second for rate in scale.heartbeats)
    here = 1 / (need_jobs / best_jobs + need_beats / best_beats)
    text = (
        f"Ping jobs/s come within 10% of their best at {saturation(scale.jobs)} process(es), "
        f"heartbeats/s at {saturation(scale.heartbeats)}. "
        f"A GPU worker finishing a {JOB_SECONDS:.0f} s job needs {need_jobs:.2f} jobs/s and "
        f"{need_beats:.2f} heartbeats/s (one every {scale.heartbeat_seconds:g} s, "
        "`ATELIER_HEARTBEAT_SECONDS`). At the best rates above, this machine, workers and all, "
        f"feeds about **{here:,.0f}** such workers"
    )
    job_ms = [rate.db_cpu_ms for rate in scale.jobs if rate.db_cpu_ms is not None]
    beat_ms = [rate.db_cpu_ms for rate in scale.heartbeats if rate.db_cpu_ms is not None]
    if job_ms and beat_ms:
        per_worker_ms = need_jobs * max(job_ms) + need_beats * max(beat_ms)
        text += (
            f"; by the database's own CPU time (the largest per job and per heartbeat above), "
            f"one PostgreSQL core feeds about **{1000 / per_worker_ms:,.0f}**"
        )
    return text + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1, 2 and 4 processes; print only")
    args = parser.parse_args()
    started = os.getloadavg()[0]
    scale = measure(processes=(1, 2, 4)) if args.quick else measure()
    text = table(scale)
    fed = gpu_workers_fed(scale)
    print(text)
    print(fed)
    if args.quick:
        return
    cores = os.cpu_count()
    body = (
        "## How far one control plane goes\n\n"
        f"{machine_line()}; {cores} cores, load average {started:.1f} when it started and "
        f"{os.getloadavg()[0]:.1f} when it ended\n\n"
        "`python -m bench.scale`: real `atelier worker` processes (one pool process each, as "
        "a GPU worker runs) against one PostgreSQL database and one Redis. *Ping jobs/s*: "
        "ping jobs (claim, lease keeper, succeed, Celery's acknowledgement, result and task "
        "events; one job per message) from a queue filled before the workers start together. "
        "*Heartbeats/s*: as many processes each renewing a claimed job's lease with "
        f"`atelier.jobs.heartbeat` as fast as they can, {LOSS_ROWS} loss rows a call. Rates "
        f"count what finished while every process was busy, best of {ROUNDS} rounds; *vs 1* is "
        "the ratio to one process in the same run. *Database CPU* is what PostgreSQL's server "
        "processes for this database spent per job or heartbeat (from /proc), whatever the "
        "workers cost: what the database would spend with the workers on other machines. A "
        "real job does a little more (it reads its inputs' rows and records its result), and "
        "every running job also sends its progress to Redis at most every 0.5 s, which is not "
        "measured here.\n\n"
        f"Workers, PostgreSQL and Redis share this machine's {cores} cores, and other work "
        "was running on it: absolute rates are noisy, and where a rate stops growing is where "
        "these cores run out, not where the database does.\n\n"
        f"{text}\n\n{fed}\n"
    )
    write_section("scale", body)


if __name__ == "__main__":
    main()
