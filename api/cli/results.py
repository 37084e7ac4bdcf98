"""`atelier results BATCH --out DIR`: write what a batch produced to a folder.

NST batches: every finished image with its loss plot and CSV, and the contact sheet (the same
export `atelier stylize` writes). Video batches: the result videos. Both: `batch.json`, the
batch as the API returns it. Jobs still running are listed as such; run it again later.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.cli.runtime import Runtime, console, get_or_exit, runtime
from api.http.schemas import BatchOut
from api.http.views import asset_labels, batch_out, job_inputs
from atelier.db import session_scope
from atelier.export import export_batch, safe_stem
from atelier.models import Batch, JobKind, JobState

out_console = Console()
VIDEO_SUFFIX = {"video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm"}


def _export_videos(
    rt: Runtime, batch: BatchOut, labels: dict[str, str], out: Path
) -> dict[int, Path]:
    written: dict[int, Path] = {}
    for job in batch.jobs:
        if job.state != JobState.SUCCEEDED or job.result is None:
            continue
        source = rt.storage.path(job.result.sha256)
        if not source.is_file():
            continue
        stem = safe_stem(labels.get(job.inputs.get("video", ""), ""), "video")
        target = out / f"{stem}__job-{job.id}{VIDEO_SUFFIX.get(job.result.media_type, '.bin')}"
        shutil.copyfile(source, target)
        written[job.id] = target
    return written


def results_cmd(
    batch: Annotated[int, typer.Argument(help="The batch id (see `atelier status`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into.")],
) -> None:
    """Write a batch's results, loss plots, CSVs and contact sheet into a folder."""
    rt = runtime()
    with session_scope(rt.db_url) as session:
        row = get_or_exit(session, Batch, batch)
        body = batch_out(session, row)
        labels = asset_labels(session, {s for j in row.jobs for s in job_inputs(j)})
    out.mkdir(parents=True, exist_ok=True)
    if body.kind == JobKind.NST:
        written = {item.job_id: item.image for item in export_batch(rt.settings, batch, out)}
    else:
        written = _export_videos(rt, body, labels, out)
    (out / "batch.json").write_text(body.model_dump_json(indent=2))
    table = Table(title=f"batch {batch} → {out}")
    for column in ("job", "state", "file"):
        table.add_column(column)
    for job in body.jobs:
        path = written.get(job.id)
        table.add_row(str(job.id), job.state, path.name if path else (job.error or ""))
    out_console.print(table)
    if body.kind == JobKind.NST:
        console.print(f"contact sheet: {out / 'sheet.png'}")
    if not body.finished:
        console.print(
            f"[yellow]batch {batch} is {body.progress * 100:.0f}% done; run this again when "
            f"`atelier status --batch {batch}` shows it finished[/yellow]"
        )
    if any(job.state in (JobState.FAILED, JobState.CANCELLED) for job in body.jobs):
        raise typer.Exit(1)
