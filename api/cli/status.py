"""`atelier status`: batches, a batch's jobs, or one job, as tables read from the database."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from api.cli.runtime import get_or_exit, runtime
from atelier.db import session_scope
from atelier.models import Batch, Job
from atelier.read import (
    AttemptOut,
    BatchOut,
    BatchSummary,
    JobOut,
    asset_labels,
    batch_out,
    job_detail,
    job_inputs,
    list_batches,
)

out = Console()
STATE_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "red",
    "running": "cyan",
    "queued": "yellow",
}


def _state(state: str) -> str:
    return f"[{STATE_STYLE.get(state, 'white')}]{state}[/]"


def _pct(progress: float) -> str:
    return f"{progress * 100:.0f}%"


def _counts(batch: BatchSummary) -> str:
    return ", ".join(f"{n} {_state(state)}" for state, n in batch.counts.items())


def _loss(job: JobOut) -> str:
    total = job.meta.get("losses", {}).get("total")
    return f"{total:.4g}" if isinstance(total, int | float) else ""


def batches_table(batches: list[BatchSummary], total: int) -> Table:
    table = Table(title=f"batches ({len(batches)} of {total}, newest first)")
    for column in ("batch", "kind", "label", "jobs", "states", "progress", "created (UTC)"):
        table.add_column(column)
    for b in batches:
        table.add_row(
            str(b.id),
            b.kind,
            b.label or "",
            str(b.total),
            _counts(b),
            _pct(b.progress),
            b.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )
    return table


def batch_table(batch: BatchOut, labels: dict[str, str]) -> Table:
    title = f"batch {batch.id} ({batch.kind}{', ' + batch.label if batch.label else ''}): "
    title += f"{_pct(batch.progress)}, {_counts(batch)}"
    table = Table(title=title)
    for column in ("job", "inputs", "state", "progress", "attempts", "loss", "seconds", "note"):
        table.add_column(column)
    for job in batch.jobs:
        inputs = job.inputs
        if job.kind == "nst":
            styles = inputs.get("styles", [])
            style = labels.get(styles[0], "?") if len(styles) == 1 else "blend"
            shown = f"{labels.get(inputs.get('content', ''), '?')} x {style}"
        else:
            shown = labels.get(inputs.get("video", ""), "")
        note = job.error or job.warning or ""
        note = note or (f"reused job {job.reused_from_id}" if job.reused_from_id else "")
        table.add_row(
            str(job.id),
            shown,
            _state(job.state),
            _pct(job.progress),
            f"{job.attempts}/{job.max_attempts}",
            _loss(job),
            f"{job.seconds:.1f}" if job.seconds is not None else "",
            note,
        )
    return table


def job_table(job: JobOut) -> Table:
    table = Table(title=f"job {job.id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = {
        "kind": job.kind,
        "batch": str(job.batch_id or ""),
        "state": _state(job.state),
        "progress": _pct(job.progress),
        "attempts": f"{job.attempts} of {job.max_attempts}",
        "worker": job.worker or "",
        "inputs": json.dumps(job.inputs),
        "params": json.dumps(job.params),
        "meta": json.dumps(job.meta),
        "result": f"{job.result.sha256} ({job.result.media_type})" if job.result else "",
        "reused from": str(job.reused_from_id or ""),
        "created": str(job.created_at),
        "started": str(job.started_at or ""),
        "finished": str(job.finished_at or ""),
        "seconds": f"{job.seconds:.2f}" if job.seconds is not None else "",
        "error": job.error or "",
        "warning": job.warning or "",
    }
    for field, value in rows.items():
        table.add_row(field, value)
    for attempt in job.history or []:
        table.add_row(f"attempt {attempt.attempt}", _attempt(attempt))
    return table


def _attempt(attempt: AttemptOut) -> str:
    """One attempt on one line: how it ended, where, when, and its error."""
    ended = f", ended {attempt.ended_at}" if attempt.ended_at else ""
    task = f" (task {attempt.task_id})" if attempt.task_id else ""
    line = f"{_state(attempt.outcome)} on {attempt.worker}{task}, claimed {attempt.claimed_at}"
    return line + ended + (f": {attempt.error}" if attempt.error else "")


def show(renderable: Table) -> None:
    """Print a table at the terminal's width; into a pipe or file, at the table's own width
    (not folded to 80 columns), so nothing is cut."""
    if out.is_terminal or "COLUMNS" in os.environ:
        out.print(renderable)
    else:
        unbounded = out.options.update_width(100_000)
        wide = out.measure(renderable, options=unbounded).maximum
        Console(width=max(out.width, wide)).print(renderable)


def status_cmd(
    batch: Annotated[int | None, typer.Option("--batch", "-b", help="Show this batch's jobs.")] = (
        None
    ),
    job: Annotated[int | None, typer.Option("--job", "-j", help="Show one job in full.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Batches to list.")] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (as the HTTP API returns it) for scripts.")
    ] = False,
) -> None:
    """Show recent batches, one batch's jobs (--batch) or one job (--job)."""
    if batch is not None and job is not None:
        raise typer.BadParameter(
            "give --batch or --job, not both", param_hint="'--batch' / '--job'"
        )
    rt = runtime()
    with session_scope(rt.db_url) as session:
        if job is not None:
            row = get_or_exit(session, Job, job)
            detail = job_detail(session, row)
            body: BaseModel = detail
            table = job_table(detail)
        elif batch is not None:
            row = get_or_exit(session, Batch, batch)
            one = batch_out(session, row)
            labels = asset_labels(session, {s for j in row.jobs for s in job_inputs(j)})
            body, table = one, batch_table(one, labels)
        else:
            page = list_batches(session, limit, 0)
            body, table = page, batches_table(page.items, page.total)
    if as_json:
        typer.echo(body.model_dump_json(indent=2))
    else:
        show(table)
