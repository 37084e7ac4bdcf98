"""`atelier results BATCH --out DIR`: write what a batch produced to a folder.

NST batches: every finished image with its loss plot and CSV, and the contact sheet (the same
export `atelier stylize` writes). Video batches: the result videos. Both: `batch.json`, the
batch as the API returns it. Jobs still running are listed as such; run it again later.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from api.cli.runtime import Runtime, console, get_or_exit, runtime
from api.cli.status import show
from atelier.db import session_scope
from atelier.export import export_batch, safe_stem
from atelier.models import Batch, JobKind, JobState
from atelier.read import BatchOut, asset_labels, batch_out, job_inputs

VIDEO_SUFFIX = {"video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm"}


def _export_videos(
    rt: Runtime,
    batch: BatchOut,
    labels: dict[str, str],
    out: Path,
    on_job: Callable[[int, int], None],
) -> dict[int, Path]:
    written: dict[int, Path] = {}
    for done, job in enumerate(batch.jobs, 1):
        result = job.result
        if job.state == JobState.SUCCEEDED and result is not None:
            stem = safe_stem(labels.get(job.inputs.get("video", ""), ""), "video")
            suffix = VIDEO_SUFFIX.get(result.media_type, ".bin")
            target = out / f"{stem}__job-{job.id}{suffix}"
            try:
                rt.storage.copy_to(result.sha256, target)
                written[job.id] = target
            except FileNotFoundError:  # removed from storage: nothing to write
                target.unlink(missing_ok=True)
        on_job(done, len(batch.jobs))
    return written


def results_cmd(
    batch: Annotated[int, typer.Argument(help="The batch id (see `atelier status`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what was written as JSON, for scripts.")
    ] = False,
) -> None:
    """Write a batch's results, loss plots, CSVs and contact sheet into a folder."""
    rt = runtime()
    with session_scope(rt.db_url) as session:
        row = get_or_exit(session, Batch, batch)
        body = batch_out(session, row)
        labels = asset_labels(session, {s for j in row.jobs for s in job_inputs(j)})
    out.mkdir(parents=True, exist_ok=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(f"writing batch {batch}", total=len(body.jobs) or 1)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        if body.kind == JobKind.NST:
            exported = export_batch(rt.settings, batch, out, on_job=advance)
            written = {item.job_id: item.image for item in exported}
        else:
            written = _export_videos(rt, body, labels, out, advance)
    (out / "batch.json").write_text(body.model_dump_json(indent=2))
    sheet = out / "sheet.png" if body.kind == JobKind.NST else None
    if as_json:
        files = [
            {
                "job": job.id,
                "state": job.state,
                "file": str(written[job.id]) if written.get(job.id) else None,
                "error": job.error,
            }
            for job in body.jobs
        ]
        summary = {"batch": batch, "out": str(out), "finished": body.finished, "jobs": files}
        typer.echo(json.dumps({**summary, "sheet": str(sheet) if sheet else None}, indent=2))
    else:
        table = Table(title=f"batch {batch} → {out}")
        for column in ("job", "state", "file"):
            table.add_column(column)
        for job in body.jobs:
            path = written.get(job.id)
            table.add_row(str(job.id), job.state, path.name if path else (job.error or ""))
        show(table)
        if sheet is not None:
            console.print(f"contact sheet: {sheet}")
    if not body.finished:
        console.print(
            f"[yellow]batch {batch} is {body.progress * 100:.0f}% done; run this again when "
            f"`atelier status --batch {batch}` shows it finished[/yellow]"
        )
    if any(job.state in (JobState.FAILED, JobState.CANCELLED) for job in body.jobs):
        raise typer.Exit(1)
