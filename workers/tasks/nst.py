"""The NST task: optimize a group of content x style jobs together and record everything.

A message carries up to `max_batch` job ids of one batch (same parameters). The jobs are loaded,
optimized as one batch tensor by the engine, and each result is stored before its row says
`succeeded`. A job whose input is bad fails alone; the rest of the group carries on.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Task, shared_task

from atelier.assets import record_asset
from atelier.cache import LRU
from atelier.celery_app import NST_STYLIZE
from atelier.db import session_scope
from atelier.errors import JobFailed, JobStopped
from atelier.media import load_rgb
from atelier.schemas import NSTParams
from atelier.settings import Settings, get_settings
from workers.nst.plan import EngineJob, check_job, needed_side
from workers.tasks.hard_limits import JobTask
from workers.tasks.runner import JobContext, claim_jobs, run_claimed
from workers.tasks.stylize import by_params, load_each, png, succeed

log = logging.getLogger(__name__)
# A worker keeps one engine per weights spec (its network, compiled steps and style targets):
# two, so alternating specs do not rebuild, and a third evicts the least recently used.
_ENGINES: LRU[Any] = LRU(2)
# Style images decoded at the size a job needs, so a style shared by many jobs and messages is
# decoded once; bounded by their bytes (a 512 px style is about 2 MB as float32).
STYLE_CACHE_BYTES = 256 * 2**20
_STYLES: LRU[Any] = LRU(STYLE_CACHE_BYTES, weigh=lambda image: image.nbytes)


@shared_task(name=NST_STYLIZE, base=JobTask, bind=True, throws=(JobFailed,))
def stylize(self: Task, job_ids: list[int]) -> dict:
    settings = get_settings()
    load_tensorflow()
    return run_claimed(claim_jobs(self, job_ids, settings), lambda c: _run(c, settings))


def load_tensorflow() -> None:
    """Import the engine (TensorFlow) before claiming anything. The first import holds the
    interpreter for seconds, longer on a busy machine; done after a claim, it would stall the
    thread that renews the claimed jobs' leases, and a short lease could lapse and be re-sent."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep C++ start-up noise out of logs
    import workers.nst.engine  # noqa: F401


def engine_for(weights: str) -> Any:
    """The engine of a weights spec (see `_ENGINES`): it keeps the model and the style-target
    cache, so styles shared by later messages of a grid are not computed again."""

    def make() -> Any:
        load_tensorflow()
        from workers.nst.engine import StyleTransferEngine

        return StyleTransferEngine(weights=weights, memory_mb=get_settings().nst_memory_mb)

    return _ENGINES.get_or_make(weights, make)


def _run(contexts: list[JobContext], settings: Settings) -> None:
    for params, members in by_params(contexts):
        _run_group(members, params, settings)


def _load(ctx: JobContext, params: NSTParams, settings: Settings) -> Any:
    """The job's images, decoded no larger than the job needs and checked against `params`
    (InputError names what is wrong with them)."""
    storage = ctx.storage
    content = load_rgb(
        storage.local_path(ctx.job.inputs["content"]), settings.max_pixels, params.size
    )
    # A style is used at size x style_scale, enlarged when its shortest side would be under
    # what the layers need; `init=style` also resizes it to the content's size.
    longest = max(params.size, round(params.size * params.style_scale))
    shortest = needed_side(params)
    styles = [
        (
            sha,
            _STYLES.get_or_make(
                (sha, longest, shortest),
                lambda sha=sha: load_rgb(
                    storage.local_path(sha), settings.max_pixels, longest, shortest
                ),
            ),
        )
        for sha in ctx.job.inputs["styles"]
    ]
    job = EngineJob(content=content, styles=styles)
    check_job(job, params)
    return job


def _run_group(contexts: list[JobContext], params: NSTParams, settings: Settings) -> None:
    live, work = load_each(contexts, lambda ctx: _load(ctx, params, settings))
    if not live:
        return
    weights = params.weights or settings.vgg_weights
    stopped: set[int] = set()

    def on_progress(event: Any) -> None:
        for index, ctx in enumerate(live):
            if index in stopped:
                continue
            row = event.losses[index]
            meta = {"iteration": event.iteration, "of": event.of, "losses": _losses(row)}
            if event.previews is not None:
                meta["preview"] = _store_preview(ctx, event.previews[index], event.iteration)
            try:
                ctx.report(event.iteration / event.of, meta, losses=[row])
            except JobStopped as stop:
                log.info("job %s: %s", ctx.lease.job_id, stop)
                stopped.add(index)

    device: dict[str, str] = {"weights": weights}

    def on_stage(text: str) -> None:
        """A slow first-time step (loading, compiling): shown by progress bars as it starts."""
        for index, ctx in enumerate(live):
            if index in stopped:
                continue
            try:
                ctx.report(0.0, {"stage": text, **device}, force=True)
            except JobStopped as stop:
                log.info("job %s: %s", ctx.lease.job_id, stop)
                stopped.add(index)

    if weights not in _ENGINES:
        on_stage("starting TensorFlow")
    engine = engine_for(weights)
    device["device"] = engine.device
    results = engine.run(
        work,
        params,
        on_progress=on_progress,
        should_stop=lambda: len(stopped) == len(live),
        on_stage=on_stage,
    )
    for index, (ctx, result) in enumerate(zip(live, results, strict=True)):
        if index in stopped:
            continue
        try:
            _finish(ctx, result, weights)
        except JobStopped as stop:
            # Cancelled (or taken over) since its last report: the other jobs of the group
            # are finished all the same.
            log.info("job %s: %s", ctx.lease.job_id, stop)


def _losses(row: Any) -> dict[str, float]:
    _, total, content, style, tv = row
    return {
        "total": float(total),
        "content": float(content),
        "style": float(style),
        "tv": float(tv),
    }


def _store_preview(ctx: JobContext, image: Any, iteration: int) -> str:
    """Keep an intermediate image; its hash goes into the job's progress meta."""
    stored = ctx.storage.put_bytes(png(image, {"atelier:weights": "preview"}))
    with session_scope(ctx.lease.db_url) as session:
        record_asset(
            session,
            stored,
            kind="preview",
            media_type="image/png",
            width=image.shape[1],
            height=image.shape[0],
            label=f"job {ctx.lease.job_id} iteration {iteration}",
        )
    return stored.sha256


def _finish(ctx: JobContext, result: Any, weights: str) -> None:
    """Flush the last loss rows (which also checks the job is still this attempt's and not
    cancelled), then store the image completely, then mark the job done."""
    ctx.flush(1.0)
    meta = {
        "device": result.device,
        "weights": result.weights,
        "random_weights": result.weights == "none",
        "iterations": len(result.losses),
        "iterations_per_second": round(result.iterations_per_second, 3),
        "losses": _losses(result.final),
    }
    succeed(ctx, result.image, {"atelier:weights": weights}, meta, result.seconds)
