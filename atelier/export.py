"""Write a batch's results to a folder people can browse: images, loss plots, CSVs, a sheet.

Names come from the inputs' labels, cleaned to a safe file name; they are only ever used inside the
folder the user chose. Names are unique in the folder: two different inputs whose labels clean to
the same stem (`trip1/a.jpg` and `trip2/a.jpg`) are each told apart by the first 8 hex digits of
their content hash (`a-3f2c1b9e`), and a name that still repeats gets the job id (`-j42`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from sqlalchemy import select

from atelier.db import session_scope
from atelier.models import Asset, Batch, Job, JobState, LossRecord
from atelier.reports import SheetCell, contact_sheet_png, loss_csv, loss_plot_png
from atelier.settings import Settings
from atelier.storage import Storage

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


def export_batch(settings: Settings, batch_id: int, out: Path) -> list[Exported]:
    """Write every finished job of an NST batch, each Gatys job's loss plot and CSV, and
    `sheet.png`."""
    db_url = settings.resolved_database_url
    storage = Storage(settings.resolved_storage_dir)
    out.mkdir(parents=True, exist_ok=True)
    with session_scope(db_url) as session:
        batch = session.get(Batch, batch_id)
        if batch is None:
            raise LookupError(f"no batch {batch_id}")
        jobs = list(session.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.id)))
        shas = {
            s for j in jobs for s in [j.inputs.get("content"), *j.inputs.get("styles", [])] if s
        }
        assets = {a.sha256: a for a in session.scalars(select(Asset).where(Asset.sha256.in_(shas)))}
        results = {
            a.id: a
            for a in session.scalars(
                select(Asset).where(
                    Asset.id.in_([j.result_asset_id for j in jobs if j.result_asset_id])
                )
            )
        }
    contents = [j.inputs.get("content") for j in jobs]
    styles_used = [s for j in jobs for s in j.inputs.get("styles", [])]
    names = {
        **_unique_stems({sha: assets[sha].label for sha in contents if sha in assets}),
        **_unique_stems({sha: assets[sha].label for sha in styles_used if sha in assets}),
    }
    taken: set[str] = set()
    exported: list[Exported] = []
    for job in jobs:
        styles = job.inputs.get("styles", [])
        style_name = names.get(styles[0], "style") if len(styles) == 1 else "blend"
        stem = f"{names.get(job.inputs.get('content'), 'content')}__{style_name}"
        if stem in taken:
            stem = f"{stem}-j{job.id}"
        taken.add(stem)
        image = plot = None
        if job.state == JobState.SUCCEEDED and job.result_asset_id in results:
            image = out / f"{stem}.png"
            image.write_bytes(storage.path(results[job.result_asset_id].sha256).read_bytes())
            rows = loss_rows(db_url, job)
            if rows:  # the fast engine optimises nothing: no loss history to show
                plot = out / f"{stem}.loss.png"
                plot.write_bytes(loss_plot_png(rows, f"{stem} (job {job.id})"))
                (out / f"{stem}.losses.csv").write_text(loss_csv(rows))
        exported.append(Exported(job.id, job.state, image, plot, job.error))
    (out / "sheet.png").write_bytes(batch_sheet_png(settings, batch_id))
    return exported


def _unique_stems(labels: dict[str, str | None]) -> dict[str, str]:
    """File stems of the assets `labels` names (sha256 -> label), distinct from each other:
    a stem shared by different assets gets each asset's hash prefix, so the same inputs always
    get the same names whatever order they came in."""
    stems = {sha: safe_stem(label, sha[:12]) for sha, label in labels.items()}
    counts: dict[str, int] = {}
    for stem in stems.values():
        counts[stem] = counts.get(stem, 0) + 1
    return {sha: stem if counts[stem] == 1 else f"{stem}-{sha[:8]}" for sha, stem in stems.items()}


def batch_sheet_png(settings: Settings, batch_id: int, cell: int = 160) -> bytes:
    """The contact sheet of a batch as it stands: contents as rows, styles (or blends) as
    columns."""
    storage = Storage(settings.resolved_storage_dir)
    with session_scope(settings.resolved_database_url) as session:
        jobs = list(session.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.id)))
        result_ids = [j.result_asset_id for j in jobs if j.result_asset_id]
        results = {
            a.id: a.sha256 for a in session.scalars(select(Asset).where(Asset.id.in_(result_ids)))
        }
    contents: list[str] = []
    columns: list[tuple[str, ...]] = []
    for job in jobs:
        if job.inputs["content"] not in contents:
            contents.append(job.inputs["content"])
        if tuple(job.inputs["styles"]) not in columns:
            columns.append(tuple(job.inputs["styles"]))
    cells = {(j.inputs["content"], tuple(j.inputs["styles"])): j for j in jobs}

    def image(sha: str | None) -> Image.Image | None:
        if sha is None or not storage.exists(sha):
            return None
        with Image.open(storage.path(sha)) as img:
            return img.convert("RGB")

    grid = []
    for content in contents:
        row = []
        for column in columns:
            job = cells.get((content, column))
            sha = results.get(job.result_asset_id) if job and job.result_asset_id else None
            caption = "" if job is None or job.state == JobState.SUCCEEDED else job.state
            row.append(SheetCell(image(sha), caption))
        grid.append(row)
    return contact_sheet_png(
        [image(c) for c in contents], [image(col[0]) for col in columns], grid, cell=cell
    )
