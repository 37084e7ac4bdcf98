"""Render FAULTS.md from the fault suite's summary (the JSON lines that
`tests.faults.outcomes.record` writes).

ATELIER_FAULT_RUNS=3 ATELIER_FAULTS_SUMMARY=faults.jsonl \
    .venv/bin/pytest tests/faults --timeout 1800
.venv/bin/python -m tests.faults.report faults.jsonl FAULTS.md --wall 754
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FAULT_WORDS = {
    "kill": "SIGKILL",
    "restart": "Redis restart",
    "drop": "connection terminated",
    "cancel": "cancel",
    "wait": "segments queued past the lease",
    "outage": "PostgreSQL stopped",
    "store": "object store killed",
    "ctrl-c": "Ctrl-C",
    "lost answer": "claim answer lost",
    "stranded": "stranded job",
}

HEADER = """# Fault tests

What happens to jobs when the processes under them fail, measured by `tests/faults/` on real
processes: `atelier worker` and `atelier beat` (its reaper on a `default` worker), a private
`redis-server` with nothing on disk, and a PostgreSQL database of the test's own. The processes run
with a short lease (`ATELIER_LEASE_SECONDS=5`, `ATELIER_HEARTBEAT_SECONDS=0.5`,
`ATELIER_REAPER_INTERVAL=1`, `ATELIER_REQUEUE_GRACE_SECONDS=3`), NST on random VGG19 weights
(`ATELIER_VGG_WEIGHTS=none`) at 32 px, video on a 2 s clip of `video/chaplin.mp4`.

- **SIGKILL an NST worker mid-job**: two `nst` workers; once the job's heartbeats report it
  10-75 % done, SIGKILL the worker running it and start a replacement.
- **SIGKILL a video worker mid-job**: the same with two `video` workers and a face-filter job.
- **Restart Redis during a batch of 12 NST jobs**: two `nst` workers on a 3 x 4 grid (three
  messages of 4 jobs); once some jobs are part way and others wait, `SHUTDOWN NOSAVE` Redis,
  wait a second and start it again: every message, waiting or held by a worker, is gone.
- **Drop the worker's PostgreSQL connections mid-job**: one `nst` worker; `pg_terminate_backend`
  on every connection of the worker process, up to 3 times half a second apart, while its job runs.
- **Cancel one job of a 4-job NST message just before it is stored**: one `nst` worker, 1 content
  x 4 styles in one message, heartbeats 600 s apart so the worker hears of the cancel only when it
  goes to store the results. The figures are the other 3 jobs of each run; the cancelled one must
  get no result and keep every loss row it computed.
- **Segmented video whose segments wait behind four whole videos**: one `video` worker; a job
  split into 4 segments (`segment_seconds` 0.5), then four whole 2x2 boards (each with other
  filters) sent right after it, which the worker runs before it reaches the segments. A run
  counts only if the segments waited longer than the 5 s lease (its wait is in the notes).
- **Stop PostgreSQL for 5 s**: a PostgreSQL server of the test's own, stopped with `pg_ctl stop
  -m immediate` while an NST job runs and restarted 5 s later; a video job's message is sent
  while it is away, so an idle `video` worker takes it during the outage. The lease is 30 s here
  (`ATELIER_LEASE_SECONDS=30`), longer than the outage, as the deployment's 120 s is longer than a
  restart.
- **Kill the object store for 5 s**: a SeaweedFS server of the test's own holds the files
  (`ATELIER_STORAGE_URL`); once a fast-engine job's and a video job's inputs are in it, it is
  SIGKILLed, the jobs' messages are sent to a `fast,video,default` worker with two pool
  processes (both jobs wait for the store at once) whose data folder is its own (it must fetch
  every input from the store), and the store is started again 5 s later. Reads and uploads
  retry (`ATELIER_STORAGE_RETRY_SECONDS`); every job must take exactly 1 attempt, with nothing
  re-sent by the reaper.
- **Fill a worker's disk**: a `fast,video,default` worker (two pool processes) runs in a user
  and mount namespace of its own with its data folder on a 64 MiB tmpfs; once a fast-engine
  job's and a segmented video job's inputs are there, the tmpfs is filled with a file and both
  messages are sent. Storing the fast job's result and ffmpeg writing a segment fail with a real
  `ENOSPC`; the disk stays full for at least 5 s and until both jobs have been given back by it
  (the deployment's full disk lasted minutes: what counts is that every job meets it),
  then the file is deleted. Attempts given back by an outage are not spent: the figures count
  the attempts spent, and every job must have spent exactly 1 (the one that succeeded).
- **Ctrl-C on an embedded `atelier stylize`, then `atelier worker`**: the embedded default
  (SQLite, filesystem broker, the worker inside the command); SIGINT once a job of the 2-job
  batch is under way; then `atelier worker` until the batch is done. The jobs must be `queued`
  (not `running`) when the command has exited, and take exactly 2 attempts: the stopped one,
  then the resumed one.
- **Lose the answer to a claim's commit**: one `default` worker whose database connections go
  through a proxy (`tests/support/pgproxy.py`); for a message of 2 ping jobs, the proxy passes
  each claim's transaction to PostgreSQL, which commits it, and closes the connection instead of
  passing back the answer. Every job must take exactly 1 attempt, recorded once.
- **Strand a mixed-size grid (no message sent)**: a `fast` worker and the reaper; a grid of two
  sizes (32 and 48 px, fast engine) is written and its messages never sent, as by a producer that
  died between commit and send. The reaper must send it one size per message (the notes count
  the messages), and every job must take exactly 1 attempt.
- **Hung work** (`test_hung_work.py`, not in the tables: each job ends by design, cancelled or
  failed, never retried): a job's work waits inside PostgreSQL for an exclusive lock held on the
  `assets` table, so it reports nothing. Cancelled, its process must be ended while the lock is
  still held, and the worker must then take its next job; a whole-video and a hard-limit-only
  message must each end at their time limit, failed with a message in their first attempt.

Every run checks, from the database: every job `succeeded`; exactly one result asset per job (the
row's, and no other stored under the job's name); its history has one row per iteration (NST,
`loss_history` 1..N) or per frame (video, `frame_stats` 0..N-1), no gaps, no duplicates; the
attempts. After a kill the job must have taken exactly 2 attempts, the second on another worker;
after dropped connections it must have finished on the same worker process; after a cancel,
a segment wait, a database outage or a lost claim answer every job must have taken exactly 1
attempt, with no job re-sent by the reaper; a stranded grid's jobs exactly 1 attempt each.

*Lost*: jobs that did not succeed (still unfinished, or failed). *Duplicated*: jobs with more than
one result asset, or history rows written twice. *Jobs by attempts*: `2: 8` means 8 jobs took 2
attempts.

Jobs running when Redis goes away go on in their first attempt: their leases live in the
database, and progress for monitors is published best effort. Jobs whose messages were lost with
Redis keep their single attempt too: the reaper re-sends them once they have been queued longer
than the grace period.

## Found by this suite

A busy worker's job was presumed dead and run again: a worker renewed its lease only when it
reported progress, between iterations, and loading TensorFlow, building the model and compiling
the step for a new shape took longer than a short lease. The reaper re-sent the job, the live
attempt was fenced off at its first report, and each such re-run spent one of the job's attempts
(enough of them fail the job). Workers now renew the leases of the jobs they run from a thread
every `ATELIER_HEARTBEAT_SECONDS` (`workers/tasks/runner.py`, `_keep_leases`); a killed worker's
thread dies with it, so its leases still run out.

A Redis restart restarted every running job: the progress update to the result backend raised,
and the worker gave the job back to run it again from the start, spending an attempt (three
outages during one job would fail it). Progress for monitors is now best effort
(`JobContext._publish`), and the test requires that no job of the batch takes a second attempt.

Cancelling one job of a multi-job message, when the worker heard of it only as it went to store
the results, stopped the whole message: the other jobs stayed `running` with nobody renewing their
leases, the reaper re-sent them and they were computed again as attempt 2, and the cancelled job
got a result file. The cancel is now handled per job (`workers/tasks/nst.py`), the lease is
checked before the result is stored, and a cancelled job keeps the loss rows it had computed.

A segmented video lost its lease while its segments waited behind other work (nothing renewed
it until a segment ran): it was re-queued and computed again as attempt 2. The reaper now reads
`segment` and `join` messages in the broker and keeps the job's lease while they wait; `join`
renews it while it runs.

A short PostgreSQL outage cost every running job an attempt (the heartbeat raised, so did the
release, and the reaper re-sent the job after its lease), and a video message delivered during the
outage was acknowledged and lost until the reaper found the job. Job writes and claims now retry
across the outage (`atelier/dbretry.py`).

Ctrl-C on an embedded command left its job `running` until the lease ran out (the filesystem
broker deletes a message when it is read, so the late acknowledgement brought nothing back). The
job now stops at its next iteration and goes back to `queued` with a new message.

Hung work held a worker for ever: cancel only marked the row, so work that reported nothing
never heard of it; whole videos carried no time limit; `atelier worker -c 1` ran the solo pool,
where no time limit acts; and a job killed at its hard limit stayed `running` until the reaper
re-sent it to hang again. The worker now defaults to prefork, ends the process of work whose jobs
have all ended (`_keep_leases`), limits videos from their header, and fails a killed process's
jobs at once (`workers/tasks/hard_limits.py`). The same test found that a soft limit landing inside
a database call surfaced as the driver's `OperationalError` and was retried as a transient error;
it now fails the job as a time limit.

A claim whose commit landed but whose answer was lost was retried, found the job running under
its own fresh lease and answered BUSY: the message came back a lease later, and the job spent a
second attempt. Each claim now carries a token written on its attempt's record
(`job_attempts`), and a retried claim that finds its own token goes on with its attempt.

A stranded grid of several sizes came back from the reaper as one message under the time limit
of whichever job was read first, so its large jobs could fail at the small ones' limit. The
reaper now sends one parameter set per message, as producers do.

The figures below are with all these changes.
"""


def load(paths: list[Path]) -> list[dict[str, Any]]:
    entries = []
    for path in paths:
        for line in path.read_text().splitlines():
            if line.strip():
                entries.append(json.loads(line))
    return entries


def _attempts(counts: Counter[int]) -> str:
    return ", ".join(f"{attempt}: {n}" for attempt, n in sorted(counts.items()))


def _note(r: dict[str, Any]) -> str:
    """What the "Every run" table says of one run, from the figures it recorded."""
    if "killed_at" in r:
        note = f"killed at {r['killed_at']:.0%} done"
    elif "at_restart" in r:
        states = r["at_restart"].items()
        note = "at the restart: " + ", ".join(f"{v} {k}" for k, v in states)
        if "redis_away_s" in r:
            note += f"; Redis away {r['redis_away_s']} s"
    elif "cancelled_rows" in r:
        note = f"the cancelled job kept {r['cancelled_rows']} loss rows"
    elif "progress_seen" in r:
        seen = r["progress_seen"]
        note = f"segmented job's progress seen: {', '.join(f'{p:.0%}' for p in seen)}"
        if "waited_s" in r:
            note = f"segments waited {r['waited_s']} s; {note}"
    elif "store_away_s" in r:
        note = f"object store away {r['store_away_s']} s"
    elif "db_away_s" in r:
        note = f"PostgreSQL away {r['db_away_s']} s"
    elif "stopped_in_s" in r:
        note = f"the command exited {r['stopped_in_s']} s after Ctrl-C"
    elif "messages" in r:
        note = f"the reaper sent it as {r['messages']} messages"
    else:
        note = ""
    return note


def render(entries: list[dict[str, Any]], wall: float | None = None, conditions: str = "") -> str:
    """The FAULTS.md text: one table row per scenario, summed over its runs, then every run."""
    scenarios: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        scenarios.setdefault(entry["scenario"], []).append(entry)
    lines = [
        HEADER,
        "## Results",
        "",
        "| scenario | runs | faults injected | jobs | succeeded | lost | duplicated "
        "| jobs by attempts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in scenarios.items():
        faults = sum(r["faults"] for r in runs)
        word = FAULT_WORDS.get(runs[0]["fault"], runs[0]["fault"])
        attempts: Counter[int] = Counter(a for r in runs for a in r["attempts"])
        lines.append(
            f"| {name} | {len(runs)} | {word}: {faults} | {sum(r['jobs'] for r in runs)} "
            f"| {sum(r['succeeded'] for r in runs)} | {sum(r['lost'] for r in runs)} "
            f"| {sum(r['duplicated'] for r in runs)} | {_attempts(attempts)} |"
        )
    lines += ["", "### Every run", "", "| scenario | run | faults | jobs took (s) | notes |"]
    lines.append("|---|---|---|---|---|")
    for name, runs in scenarios.items():
        for r in runs:
            note = _note(r)
            lines.append(f"| {name} | {r['run']} | {r['faults']} | {r['seconds']} | {note} |")
    first = min(r["at"] for r in entries)
    when = datetime.fromtimestamp(first, UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{os.cpu_count()} CPU cores, {platform.system()} {platform.machine()}"
    lines += [
        "",
        (
            f"Measured {when} on {machine}"
            + (f"; the suite took {wall:.0f} s. " if wall else ". ")
            + conditions
        ).rstrip(),
    ]
    lines += [
        "",
        "## Rerun",
        "",
        "```sh",
        "make test   # starts PostgreSQL and Redis when down; runs tests/faults with the rest",
        "# only the fault suite, each scenario repeated 3 times, then this page:",
        "ATELIER_FAULT_RUNS=3 ATELIER_FAULTS_SUMMARY=faults.jsonl .venv/bin/pytest tests/faults \\",
        "    --timeout 1800   # three runs of a scenario may outlast the 600 s per-test default",
        ".venv/bin/python -m tests.faults.report faults.jsonl FAULTS.md",
        "```",
        "",
        "The suite needs `redis-server` on the PATH (it starts its own on a free port), the",
        "PostgreSQL server `make test` uses, and Debian's PostgreSQL server binaries",
        "(`/usr/lib/postgresql/*/bin`: the outage scenario starts and stops a server of its",
        "own). `ATELIER_FAULT_RUNS` (default 1) repeats each",
        "fault on the same processes; `ATELIER_FAULTS_SUMMARY` names the JSON lines file every",
        "run is appended to, failed runs included.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary", type=Path, nargs="+", help="JSON lines written by the suite")
    parser.add_argument("out", type=Path, help="the page to write, e.g. FAULTS.md")
    parser.add_argument("--wall", type=float, help="seconds the whole suite took")
    parser.add_argument("--note", default="", help="a sentence on the conditions of the run")
    args = parser.parse_args()
    args.out.write_text(render(load(args.summary), args.wall, args.note))


if __name__ == "__main__":
    main()
