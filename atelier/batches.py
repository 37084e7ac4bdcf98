"""Turn user input into job rows: ingest files, expand content x style grids, plan messages.

Shared by every producer (CLI, HTTP API, scheduler inboxes) so a grid means the same thing
wherever it was submitted, and identical work is never computed twice unless asked.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery
from sqlalchemy import select
from sqlalchemy.orm import Session

from atelier.assets import hold_assets, record_asset
from atelier.celery_app import NST_STYLIZE, VIDEO_FILTER, nst_task_for
from atelier.db import session_scope
from atelier.errors import InputError
from atelier.fast_models import model_digests
from atelier.grid import check_size, varying
from atelier.jobs import reuse
from atelier.models import Asset, Batch, Job, JobKind, JobState
from atelier.schemas import FAST_ENGINE_FIELDS, NSTParams, VideoParams
from atelier.settings import Settings
from atelier.storage import open_storage
from atelier.submit import new_task_id, send_jobs
from atelier.weights import weights_identity


@dataclass
class BatchPlan:
    """A batch's rows, and the messages to send: each a list of job ids run together, under the
    task id its rows were written with (`task_ids`, in the same order)."""

    batch_id: int
    job_ids: list[int]
    messages: list[list[int]] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)
    task_name: str = NST_STYLIZE
    task_ids: list[str] = field(default_factory=list)


def _messages(plan: BatchPlan, fresh: Sequence[Job], max_batch: int) -> list[list[Job]]:
    """Group the jobs to run into messages of up to `max_batch` and write each message's task id
    on its rows before they are flushed: sending then needs no second transaction."""
    groups = [list(fresh[i : i + max_batch]) for i in range(0, len(fresh), max_batch)]
    task_ids = [new_task_id() for _ in groups]
    plan.task_ids.extend(task_ids)
    for task_id, group in zip(task_ids, groups, strict=True):
        for job in group:
            job.celery_task_id = task_id
    return groups


def printable_name(name: str) -> str:
    """A file name as text any database takes: bytes that are not UTF-8 (which Python keeps as
    lone surrogates) are written as `\\xNN`."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def ingest_image(
    session: Session, settings: Settings, path: Path, label: str | None = None
) -> Asset:
    """Validate and store an image file (a copy, by content hash); refuse non-images clearly."""
    from atelier.media import probe_image

    info = probe_image(path, settings.max_pixels)
    storage = open_storage(settings)
    stored = storage.put_file(path, settings.max_upload_bytes)
    return record_asset(
        session,
        stored,
        kind="image",
        media_type=info.media_type,
        width=info.width,
        height=info.height,
        label=label or printable_name(path.name),
    )


def ingest_video(
    session: Session, settings: Settings, path: Path, label: str | None = None
) -> Asset:
    """Store a video file (a copy, by content hash) after checking from its first bytes that it
    is one, with the size and duration its header declares (its jobs' time limits come from
    them); what is inside is the worker's probe's to judge."""
    from atelier.sniff import sniff_file
    from atelier.video_header import header_report, parse_header

    sniffed = sniff_file(path)
    if sniffed is None or sniffed.kind != "video":
        what = "an empty file" if path.stat().st_size == 0 else "not a video Atelier can read"
        raise InputError(f"{path} is {what} (mp4, mov, webm, mkv or avi)")
    header = parse_header(header_report(path))  # before storing: a refusal leaves nothing
    try:
        stored = open_storage(settings).put_file(path, settings.max_upload_bytes)
    except InputError as error:
        raise InputError(f"{path}: {error}") from error
    return record_asset(
        session,
        stored,
        kind="video",
        media_type=sniffed.media_type,
        width=header.width,
        height=header.height,
        duration=header.duration,
        label=label or printable_name(path.name),
    )


def style_groups(style_shas: Sequence[str], params: NSTParams) -> list[list[str]]:
    """Columns of the grid: each style alone, or all styles blended into one (`style_blend`)."""
    if params.style_blend is None:
        return [[sha] for sha in style_shas]
    if len(params.style_blend) != len(style_shas):
        raise InputError(
            f"style_blend has {len(params.style_blend)} weights for {len(style_shas)} styles",
            field="params.style_blend",
        )
    return [list(style_shas)]


def create_nst_batch(
    settings: Settings,
    content_shas: Sequence[str],
    style_shas: Sequence[str],
    params: NSTParams | Sequence[NSTParams],
    *,
    source: str = "cli",
    label: str | None = None,
    force: bool = False,
) -> BatchPlan:
    """Write a batch and one queued job per content x style x parameters cell (one transaction).

    `params` is one parameter set or a grid's combinations (`atelier.grid.combinations`); more
    cells than `settings.max_grid` is an InputError. A cell whose identical job (same inputs,
    same parameters) already succeeded is not run again unless `force`: its row points at the
    earlier result (`reused_from_id`). Each message carries jobs of one parameter set, so the
    worker optimises them as one batch.

    The VGG19 weights of Gatys jobs are resolved here as the worker will resolve them:
    `params.weights`, else the `vgg_weights` setting, is written into the jobs' parameters (so
    the worker runs that spec), and the fingerprint names the weights by content (`_fingerprint`).
    """
    with session_scope(settings.resolved_database_url) as session:
        return write_nst_batch(
            session,
            settings,
            content_shas,
            style_shas,
            params,
            source=source,
            label=label,
            force=force,
        )


def write_nst_batch(
    session: Session,
    settings: Settings,
    content_shas: Sequence[str],
    style_shas: Sequence[str],
    params: NSTParams | Sequence[NSTParams],
    *,
    source: str = "cli",
    label: str | None = None,
    force: bool = False,
) -> BatchPlan:
    """`create_nst_batch` inside the caller's transaction, so the caller can record the batch
    in the same commit (an inbox marks its files), and a crash leaves both or neither."""
    combos = [params] if isinstance(params, NSTParams) else list(params)
    if not content_shas or not style_shas or not combos:
        raise InputError("a batch needs at least one content image and one style image")
    combos = [
        p
        if p.engine == "fast"  # the fast engine uses no VGG19 weights
        else p.model_copy(update={"weights": p.weights or settings.vgg_weights})
        for p in combos
    ]
    columns = style_groups(style_shas, combos[0])
    check_size(len(content_shas), len(columns), len(combos), settings.max_grid)
    known = hold_assets(session, [*content_shas, *style_shas])
    missing = sorted((set(content_shas) | set(style_shas)) - known)
    if missing:
        raise InputError(f"unknown asset(s): {', '.join(m[:12] for m in missing)}")
    dumps = [p.model_dump(mode="json") for p in combos]
    summary = dict(dumps[0])
    axes = varying(dumps)
    if axes:  # the batch row shows the grid: each varying axis with its values
        summary.update({name: list(dict.fromkeys(d[name] for d in dumps)) for name in axes})
    batch = Batch(kind=JobKind.NST, label=label, source=source, params=summary)
    session.add(batch)
    session.flush()
    plan = BatchPlan(batch.id, [], task_name=nst_task_for(combos[0].engine))
    cells = [
        (content, styles, combo)
        for content in content_shas
        for styles in columns
        for combo in combos
    ]
    jobs, reused = _jobs_or_reuse(session, batch, settings, cells, force)
    fresh: dict[str, list[Job]] = {}  # one parameter set per message, so it runs as one batch
    for job, (_, _, combo) in zip(jobs, cells, strict=True):
        if job not in reused:
            fresh.setdefault(combo.model_dump_json(), []).append(job)
    groups = [g for same in fresh.values() for g in _messages(plan, same, settings.max_batch)]
    session.add_all(jobs)
    session.flush()
    reuse(session, list(reused.items()))
    plan.job_ids = [job.id for job in jobs]
    plan.reused = [job.id for job in jobs if job in reused]
    plan.messages = [[job.id for job in group] for group in groups]
    return plan


def _jobs_or_reuse(
    session: Session,
    batch: Batch,
    settings: Settings,
    cells: Sequence[tuple[str, list[str], NSTParams]],
    force: bool,
) -> tuple[list[Job], dict[Job, Job]]:
    """One job row per cell (not yet flushed: the caller writes them in one flush) and those of
    them that reuse a finished twin, with the twin (`atelier.jobs.reuse` marks them); twins are
    looked up in one query per thousand cells, so a 1,000-cell grid is a handful of statements,
    not thousands."""
    fingerprints = [_fingerprint(params, [content, *styles]) for content, styles, params in cells]
    twins = {} if force else _finished_twins(session, fingerprints)
    jobs: list[Job] = []
    reused: dict[Job, Job] = {}
    for (content, styles, params), fingerprint in zip(cells, fingerprints, strict=True):
        job = Job(
            kind=JobKind.NST,
            batch_id=batch.id,
            inputs={"content": content, "styles": styles},
            params=params.model_dump(mode="json"),
            fingerprint=fingerprint,
            max_attempts=settings.max_attempts,
            meta={},
        )
        earlier = twins.get(fingerprint)
        if earlier is not None:
            reused[job] = earlier
        jobs.append(job)
    return jobs, reused


def _fingerprint(params: NSTParams, inputs: list[str]) -> str:
    """The reuse key: inputs and parameters, with the VGG19 weights named by content
    (`weights_identity`: the same file under two paths is the same work, other weights never
    reuse a result); for the fast engine only the parameters it reads, and the sha256 of its
    model files (other models never reuse a result)."""
    if params.engine != "fast":
        named = params.model_copy(update={"weights": weights_identity(params.weights or "")})
        return named.fingerprint(inputs)
    used = NSTParams.model_validate(params.model_dump(include=FAST_ENGINE_FIELDS))
    return used.fingerprint([*inputs, *sorted(model_digests().values())])


def _finished_twins(session: Session, fingerprints: Sequence[str]) -> dict[str, Job]:
    """The earliest succeeded job with a live result for each fingerprint that has one."""
    wanted = sorted(set(fingerprints))
    found: dict[str, Job] = {}
    for i in range(0, len(wanted), 1000):
        rows = session.scalars(
            select(Job)
            .join(Asset, Asset.id == Job.result_asset_id)
            .where(
                Job.fingerprint.in_(wanted[i : i + 1000]),
                Job.state == JobState.SUCCEEDED,
                Asset.deleted_at.is_(None),
            )
            .order_by(Job.id)
        )
        for job in rows:
            found.setdefault(job.fingerprint, job)
    return found


def create_video_job(
    settings: Settings,
    video_sha: str,
    params: VideoParams,
    *,
    source: str = "cli",
    label: str | None = None,
) -> BatchPlan:
    """Write a one-job batch for a video; the worker validates the file itself."""
    with session_scope(settings.resolved_database_url) as session:
        wanted = [sha for sha in (video_sha, params.style) if sha]
        missing = sorted(set(wanted) - hold_assets(session, wanted))
        if missing:
            raise InputError(f"unknown asset: {missing[0][:12]}")
        batch = Batch(
            kind=JobKind.VIDEO, label=label, source=source, params=params.model_dump(mode="json")
        )
        session.add(batch)
        session.flush()
        plan = BatchPlan(batch.id, [], task_name=VIDEO_FILTER)
        job = Job(
            kind=JobKind.VIDEO,
            batch_id=batch.id,
            inputs={"video": video_sha, **({"style": params.style} if params.style else {})},
            params=params.model_dump(mode="json"),
            fingerprint=params.fingerprint([video_sha]),
            max_attempts=settings.max_attempts,
            meta={},
        )
        _messages(plan, [job], 1)
        session.add(job)
        session.flush()
        plan.job_ids, plan.messages = [job.id], [[job.id]]
        return plan


def send_plan(app: Celery, settings: Settings, plan: BatchPlan) -> None:
    """Send the plan's messages (its rows are committed already, with their task ids)."""
    for job_ids, task_id in zip(plan.messages, plan.task_ids, strict=True):
        send_jobs(app, settings.resolved_database_url, plan.task_name, job_ids, task_id=task_id)
