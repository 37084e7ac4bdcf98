"""Write a batch's results to a folder people can browse: images, loss plots, CSVs, a sheet.

Names come from the inputs' labels, cleaned to a safe file name; they are only ever used inside the
folder the user chose. Names are unique in the folder: two different inputs whose labels clean to
the same stem (`trip1/a.jpg` and `trip2/a.jpg`) are each told apart by the first 8 hex digits of
their content hash (`a-3f2c1b9e`), and a name that still repeats gets the job id (`-j42`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from atelier.db import session_scope
from atelier.grid import cell_label, varying
from atelier.models import Asset, Batch, Job, JobState, LossRecord
from atelier.reports import SheetCell, contact_sheet_png, loss_csv, loss_plot_png
from atelier.settings import Settings
from atelier.storage import open_storage

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_stem(label: str | None, fallback: str) -> str:
    """A file-name stem from a display label: no separators, no dots in front, bounded length."""
    stem = _UNSAFE.sub("_", Path(label or "").stem).strip("._")[:80]
    return stem or fallback


@dataclass
class Exported:
    job_id: int
    state: str
    image: Path | None
    plot: Path | None
    error: str | None


def loss_rows(db_url: str, job: Job) -> list[tuple[int, float, float, float, float]]:
    """The job's loss history (a reused job shows the history of the run that made its result)."""
    source = job.reused_from_id or job.id
    with session_scope(db_url) as session:
        rows = session.execute(
            select(
                LossRecord.iteration,
                LossRecord.total,
                LossRecord.content,
                LossRecord.style,
                LossRecord.tv,
            )
            .where(LossRecord.job_id == source)
            .order_by(LossRecord.iteration)
        ).all()
    return [tuple(r) for r in rows]


def no_history_reason(job: Job) -> str | None:
    """Why a job can have no loss history (the fast engine optimises nothing), else None: its
    readers say so rather than write an empty CSV or a blank plot."""
    if job.params.get("engine") == "fast":
        return f"job {job.id} uses the fast engine, which optimises nothing: it has no loss history"
    return None


def export_batch(
    settings: Settings,
    batch_id: int,
    out: Path,
    on_job: Callable[[int, int], None] | None = None,
) -> list[Exported]:
    """Write every finished job of an NST batch, each Gatys job's loss plot and CSV, and
    `sheet.png`.

    `on_job(done, total)` follows the export job by job (a progress bar for large batches)."""
    db_url = settings.resolved_database_url
    storage = open_storage(settings)
    out.mkdir(parents=True, exist_ok=True)
    jobs, assets, results = _read_batch(db_url, batch_id)
    contents = [j.inputs.get("content") for j in jobs]
    styles_used = [s for j in jobs for s in j.inputs.get("styles", [])]
    names = {
        **_unique_stems({sha: assets[sha].label for sha in contents if sha in assets}),
        **_unique_stems({sha: assets[sha].label for sha in styles_used if sha in assets}),
    }
    axes = varying([job.params for job in jobs])
    taken: set[str] = set()
    exported: list[Exported] = []
    for job in jobs:
        stem = cell_stem(names, job.inputs, job.params, axes)
        if stem in taken:
            stem = f"{stem}-j{job.id}"
        taken.add(stem)
        image = plot = None
        if job.state == JobState.SUCCEEDED and job.result_asset_id in results:
            image = out / f"{stem}.png"
            storage.copy_to(results[job.result_asset_id].sha256, image)
            rows = loss_rows(db_url, job)
            if rows:  # the fast engine optimises nothing: no loss history to show
                plot = out / f"{stem}.loss.png"
                plot.write_bytes(loss_plot_png(rows, f"{stem} (job {job.id})"))
                (out / f"{stem}.losses.csv").write_text(loss_csv(rows))
        exported.append(Exported(job.id, job.state, image, plot, job.error))
        if on_job is not None:
            on_job(len(exported), len(jobs))
    (out / "sheet.png").write_bytes(batch_sheet_png(settings, batch_id))
    contents = list(dict.fromkeys(job.inputs.get("content") for job in jobs))
    if axes and len(contents) > 1:  # a grid over parameters: one readable sheet per content
        for content in contents:
            name = names.get(content, "content")
            (out / f"sheet__{name}.png").write_bytes(batch_sheet_png(settings, batch_id, content))
    return exported


def _read_batch(db_url: str, batch_id: int) -> tuple[list[Job], dict[str, Asset], dict[int, Asset]]:
    """A batch's jobs in order, their input assets by sha256 and their result assets by id;
    LookupError when there is no such batch."""
    with session_scope(db_url) as session:
        if session.get(Batch, batch_id) is None:
            raise LookupError(f"no batch {batch_id}")
        jobs = _batch_jobs(session, batch_id)
        shas = {
            s for j in jobs for s in [j.inputs.get("content"), *j.inputs.get("styles", [])] if s
        }
        assets = {a.sha256: a for a in session.scalars(select(Asset).where(Asset.sha256.in_(shas)))}
        result_ids = [j.result_asset_id for j in jobs if j.result_asset_id]
        results = {a.id: a for a in session.scalars(select(Asset).where(Asset.id.in_(result_ids)))}
    return jobs, assets, results


def _batch_jobs(session: Session, batch_id: int) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.id)))


def _unique_stems(labels: dict[str, str | None]) -> dict[str, str]:
    """File stems of the assets `labels` names (sha256 -> label), distinct from each other:
    a stem shared by different assets gets each asset's hash prefix, so the same inputs always
    get the same names whatever order they came in."""
    stems = {sha: safe_stem(label, sha[:12]) for sha, label in labels.items()}
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem] = counts.get(stem, 0) + 1
    return {sha: stem if counts[stem] == 1 else f"{stem}-{sha[:8]}" for sha, stem in stems.items()}


def cell_stem(
    names: dict[str, str], inputs: dict[str, Any], params: dict[str, Any], axes: list[str]
) -> str:
    """`<content>__<style>`, or `<content>__blend`, then `__sw100_ss0.5` for the varying grid
    axes of the batch."""
    styles = inputs.get("styles", [])
    style_name = names.get(styles[0], "style") if len(styles) == 1 else "blend"
    stem = f"{names.get(inputs.get('content', ''), 'content')}__{style_name}"
    return f"{stem}__{cell_label(params, axes)}" if axes else stem


def batch_sheet_png(
    settings: Settings, batch_id: int, content: str | None = None, cell: int = 160
) -> bytes:
    """The contact sheet of a batch as it stands.

    Contents as rows and styles (or blends) as columns; when the batch is a grid over
    parameters, each row is a content x style pair (headed by the style, labelled with both
    names) and each column a parameter combination (labelled with its values). `content`
    restricts the sheet to one content's rows.
    """
    storage = open_storage(settings)
    jobs, results, labels = _sheet_reads(settings.resolved_database_url, batch_id)
    axes = varying([j.params for j in jobs])
    if content is not None:
        jobs = [j for j in jobs if j.inputs["content"] == content]

    def image(sha: str | None) -> Image.Image | None:
        if sha is None or not storage.exists(sha):
            return None
        with Image.open(storage.local_path(sha)) as img:
            return img.convert("RGB")

    def row_key(job: Job) -> tuple[str, ...]:
        styles = tuple(job.inputs["styles"])
        return (job.inputs["content"], *styles) if axes else (job.inputs["content"],)

    def column_key(job: Job) -> tuple[str, ...]:
        return (cell_label(job.params, axes),) if axes else tuple(job.inputs["styles"])

    rows = list(dict.fromkeys(row_key(j) for j in jobs))
    columns = list(dict.fromkeys(column_key(j) for j in jobs))
    cells = {(row_key(j), column_key(j)): j for j in jobs}
    grid = []
    for row in rows:
        line = []
        for column in columns:
            job = cells.get((row, column))
            sha = results.get(job.result_asset_id) if job and job.result_asset_id else None
            caption = "" if job is None or job.state == JobState.SUCCEEDED else job.state
            line.append(SheetCell(image(sha), caption))
        grid.append(line)
    if not axes:
        return contact_sheet_png(
            [image(r[0]) for r in rows], [image(col[0]) for col in columns], grid, cell=cell
        )
    return contact_sheet_png(
        [image(r[1]) for r in rows],
        [None] * len(columns),
        grid,
        cell=cell,
        row_labels=[
            f"{labels.get(r[0], 'content')}\n{'+'.join(labels.get(s, 'style') for s in r[1:])}"
            for r in rows
        ],
        column_labels=[cell_label_lines(col[0]) for col in columns],
    )


def _sheet_reads(db_url: str, batch_id: int) -> tuple[list[Job], dict[int, str], dict[str, str]]:
    """What a batch's sheet shows: its jobs in order, their results' sha256 by asset id and
    their inputs' names (file stems) by sha256."""
    with session_scope(db_url) as session:
        jobs = _batch_jobs(session, batch_id)
        result_ids = [j.result_asset_id for j in jobs if j.result_asset_id]
        results = {
            a.id: a.sha256 for a in session.scalars(select(Asset).where(Asset.id.in_(result_ids)))
        }
        shas = {s for j in jobs for s in [j.inputs["content"], *j.inputs["styles"]]}
        labels = {
            a.sha256: safe_stem(a.label, a.sha256[:12])
            for a in session.scalars(select(Asset).where(Asset.sha256.in_(shas)))
        }
    return jobs, results, labels


def cell_label_lines(label: str) -> str:
    """`sw100_ss0.5` -> one value per line, for a sheet's column header."""
    return label.replace("_", "\n")
