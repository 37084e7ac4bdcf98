"""The fast-engine NST task: paint a message's content x style jobs with the Magenta network.

It runs on CPU workers (queue `fast`) and imports onnxruntime, not TensorFlow. Jobs are the same
`nst` rows as Gatys jobs (same batches, results, reuse, sheets, gallery), with `engine: fast` in
their parameters; each job is stored and marked done as soon as its image is painted, so a grid's
results appear one by one. A job whose input is bad fails alone.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from atelier import jobs
from atelier.celery_app import FAST_STYLIZE
from atelier.errors import InputError, JobFailed, JobStopped
from atelier.schemas import NSTParams
from atelier.settings import Settings, get_settings
from workers.tasks.hard_limits import JobTask
from workers.tasks.runner import JobContext, claim_jobs, run_claimed
from workers.tasks.stylize import by_params, load_each, succeed

log = logging.getLogger(__name__)
ENGINE_NAME = "magenta-arbitrary-int8-onnx"


@shared_task(name=FAST_STYLIZE, base=JobTask, bind=True, throws=(JobFailed,))
def stylize(self: Task, job_ids: list[int]) -> dict:
    settings = get_settings()
    return run_claimed(claim_jobs(self, job_ids, settings), lambda c: _run(c, settings))


def _run(contexts: list[JobContext], settings: Settings) -> None:
    for params, members in by_params(contexts):
        _run_group(members, params, settings)


def _load(ctx: JobContext, settings: Settings) -> Any:
    from atelier.media import load_rgb
    from workers.fast.engine import FastJob

    storage = ctx.storage
    content_sha = ctx.job.inputs["content"]
    content = load_rgb(storage.local_path(content_sha), settings.max_pixels)
    styles = [
        (sha, load_rgb(storage.local_path(sha), settings.max_pixels))
        for sha in ctx.job.inputs["styles"]
    ]
    return FastJob(content=content, styles=styles, content_key=content_sha)


def _run_group(contexts: list[JobContext], params: NSTParams, settings: Settings) -> None:
    from workers.fast.engine import shared_engine, shared_engine_loaded

    if not shared_engine_loaded():  # seconds with nothing else to show: progress bars say so
        for ctx in contexts:
            try:
                meta = {"engine": "fast", "stage": "loading the fast network"}
                ctx.report(0.0, meta, force=True)
            except JobStopped as stop:
                log.info("job %s: %s", ctx.lease.job_id, stop)
    engine = shared_engine()
    live, work = load_each(contexts, lambda ctx: _load(ctx, settings))
    for index, ctx in enumerate(live):
        meta = {"engine": "fast", "image": index + 1, "of": len(live)}
        try:
            ctx.report(0.0, meta, force=True)  # a cancelled job stops here, before its work
            result = engine.stylize(
                work[index],
                params.size,
                params.style_blend,
                params.strength,
                params.preserve_colors,
            )
        except InputError as error:
            jobs.fail(ctx.lease, str(error))
            continue
        except JobStopped as stop:
            log.info("job %s: %s", ctx.lease.job_id, stop)
            continue
        try:
            _finish(ctx, result, engine.digests, params)
        except JobStopped as stop:
            log.info("job %s: %s", ctx.lease.job_id, stop)


def _finish(ctx: JobContext, result: Any, digests: dict[str, str], params: NSTParams) -> None:
    """Store the image completely, then mark the job done with what made it."""
    meta = {
        "engine": "fast",
        "weights": ENGINE_NAME,
        "models": dict(digests),
        "random_weights": False,
        "device": "cpu (onnxruntime)",
        "strength": params.strength,
        "tiles": result.tiles,
    }
    text = {"atelier:engine": "fast", **{f"atelier:{n}": d for n, d in digests.items()}}
    succeed(ctx, result.image, text, meta, result.seconds)
