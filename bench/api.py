"""HTTP API under concurrent clients: throughput and latency of `atelier api` on PostgreSQL.

At 50, 200 and 500 clients started at once, each sending one GET to one of the routes a gallery
and a polling script use (`/v1/jobs`, `/v1/jobs/{id}`, `/v1/batches/{id}`, the gallery page `/`
and a result download, in turn), against one `atelier api` process with the default pool. Every
row also runs the same clients on a static file (`/static/gallery.css`, no database), the
baseline its throughput is given against. Errors are counted; a non-zero count is a failure.

`python -m bench.api` needs PostgreSQL and Redis (ATELIER_TEST_PG / ATELIER_TEST_REDIS, as the
tests) and writes the `api` section of BENCHMARKS.md; `--quick` runs 200 clients once and prints.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from atelier.settings import Settings
from bench.report import machine_line, write_section
from tests.support.load import Load, fire, seed, serve
from tests.support.services import fresh_postgres_database, fresh_redis_db

CLIENTS = (50, 200, 500)
ROUNDS = 3  # each row keeps its best round: the machine is shared


def _best(rounds: list[Load]) -> Load:
    return max(rounds, key=lambda load: load.throughput)


def measure(clients: tuple[int, ...], rounds: int) -> list[tuple[Load, Load]]:
    """(routes, static baseline) per client count."""
    results = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        fresh_postgres_database() as db,
        fresh_redis_db() as broker,
    ):
        data = Path(tmp) / "data"
        seeded = seed(Settings(data_dir=data, database_url=db, broker_url=broker))
        env = {
            "ATELIER_DATABASE_URL": db,
            "ATELIER_BROKER_URL": broker,
            "ATELIER_DATA_DIR": str(data),
        }
        with serve(env, Path(tmp) / "api.log") as base:
            fire(base, seeded.paths(), 20)  # warm: templates, plans, pool
            for n in clients:
                routes = _best([fire(base, seeded.paths(), n) for _ in range(rounds)])
                static = _best([fire(base, ["/static/gallery.css"], n) for _ in range(rounds)])
                results.append((routes, static))
    return results


def table(results: list[tuple[Load, Load]]) -> str:
    lines = [
        "| clients | errors | requests/s | vs static file | p50 ms | p99 ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for routes, static in results:
        lines.append(
            f"| {routes.clients} | {routes.errors} | {routes.throughput:.0f} | "
            f"{routes.throughput / static.throughput:.2f}x | "
            f"{routes.percentile(0.5) * 1000:.0f} | {routes.percentile(0.99) * 1000:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 clients, once; print only")
    args = parser.parse_args()
    results = measure((200,), 1) if args.quick else measure(CLIENTS, ROUNDS)
    text = table(results)
    print(text)
    if args.quick:
        return
    body = (
        "## HTTP API under concurrent clients\n\n"
        f"{machine_line()}\n\n"
        "`python -m bench.api`: one `atelier api` process (default pool: 10 + 10 connections) on "
        "PostgreSQL; N clients start at once, each sending one GET to `/v1/jobs`, "
        "`/v1/jobs/{id}`, `/v1/batches/{id}`, `/` or a result download, in turn; best of "
        f"{ROUNDS} rounds. Latency is from the start signal to the last byte; throughput is "
        "requests over the time from the start signal to the last answer, also as a ratio "
        "to the same clients fetching a static file (no database) in the same run.\n\n"
        f"{text}\n"
    )
    write_section("api", body)


if __name__ == "__main__":
    main()
