"""Video face-filter tasks: one job, optionally split into segments run on several workers.

`atelier.video.filter` claims the job and checks the input. A short video (or `segment_seconds`
0) is processed right there. A long one becomes a Celery chord: one `atelier.video.segment` task
per frame range, in parallel on any `video` worker, then `atelier.video.join`, which concatenates
the segments in order and muxes the original audio once. Every segment task writes under the
job's current attempt (its fencing token), so segments of an attempt that was replaced stop
without writing, and remove the attempt's segment folder.

While the chord's messages wait for a worker, nothing of the job runs: the scheduler's reaper
sees those messages in the broker and keeps the job's lease (`scheduler/reaper.py`). Running
segments and `join` renew it from a lease-keeper thread (`keep_leases`), as every job task
does; a segment also renews it, and learns of a cancel, with its progress reports, at most every
`heartbeat_seconds`. Progress is the share of frames whose segments are done.

Segments and `join` settle an error by the one error policy of every task (`settle_error`): bad
input fails the job, an outage gives it back without spending an attempt, anything else gives it
back spending one; a job given back is sent again as `atelier.video.filter`, whose new attempt
replaces the old one's segments.

Segments reach `join` through the storage's work area (`Storage.put_work`): a folder every video
worker mounts, or the object store's bucket when the workers share no folder.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from celery import Task, chord, shared_task
from sqlalchemy import select

from atelier import jobs
from atelier.celery_app import VIDEO_FILTER, VIDEO_JOIN, VIDEO_SEGMENT
from atelier.db import session_scope
from atelier.errors import JobFailed, JobStopped
from atelier.limits import START_SECONDS, limits, video_seconds
from atelier.schemas import VideoParams
from atelier.settings import Settings, get_settings
from atelier.storage import Storage, open_storage
from workers.tasks.hard_limits import JobTask
from workers.tasks.leases import keep_leases
from workers.tasks.runner import JobContext, claim_jobs, run_claimed, worker_name
from workers.tasks.settle import at_time_limit, settle_error, time_limit_reason
from workers.tasks.video_records import FrameRows, Outcome, finish, job_row

if TYPE_CHECKING:
    from workers.video.pipeline import VideoStats

log = logging.getLogger(__name__)


@shared_task(name=VIDEO_FILTER, base=JobTask, bind=True, throws=(JobFailed,))
def filter_video(self: Task, job_ids: list[int]) -> dict:
    """The task's result (what Flower shows) carries each finished job's warning; a segmented
    job's warning is in its `join` task's result."""
    settings = get_settings()
    result = run_claimed(claim_jobs(self, job_ids, settings), lambda c: _start(c, settings))
    warnings = _warnings(settings.resolved_database_url, result.get("claimed", []))
    return {**result, "warnings": warnings} if warnings else result


def _warnings(db_url: str, job_ids: list[int]) -> dict[str, str]:
    from atelier.models import Job

    if not job_ids:
        return {}
    with session_scope(db_url) as session:
        rows = session.execute(
            select(Job.id, Job.warning).where(Job.id.in_(job_ids), Job.warning.is_not(None))
        )
        return {str(job_id): warning for job_id, warning in rows}


def _start(contexts: list[JobContext], settings: Settings) -> None:
    from workers.video.ffmpeg import FFMPEG_TIMEOUT_SECONDS
    from workers.video.pipeline import plan_segments
    from workers.video.probe import probe_video

    for ctx in contexts:
        params = VideoParams.model_validate(ctx.job.params)
        source = ctx.storage.local_path(ctx.job.inputs["video"])
        label = _label(ctx.lease.db_url, ctx.job.inputs["video"])
        info = probe_video(
            source,
            max_seconds=settings.max_video_seconds,
            max_pixels=settings.max_video_pixels,
            name=repr(label),
        )
        segments = plan_segments(info, params.segment_seconds)
        if len(segments) == 1:
            _whole(ctx, source, params, settings)
            continue
        lease = ctx.lease
        ctx.report(0.0, {"segments": len(segments), "frames": info.frame_count}, force=True)
        panels = len(params.panel_filters())
        scale = settings.time_limit_scale
        parts = [
            segment.si(lease.job_id, lease.attempt, index, start, end).set(
                **limits(video_seconds(end - start, info.width, info.height, panels), scale)
            )
            for index, (start, end) in enumerate(segments)
        ]
        joining = limits(START_SECONDS + FFMPEG_TIMEOUT_SECONDS * 2, scale)
        chord(parts)(join.s(lease.job_id, lease.attempt).set(**joining))
        log.info("job %s: %d segments sent", lease.job_id, len(segments))


def _whole(ctx: JobContext, source: Path, params: VideoParams, settings: Settings) -> None:
    from workers.video.pipeline import process_video

    def progress(done: int, total: int) -> None:
        ctx.report(done / max(total, 1), {"frame": done, "of": total})

    rows = FrameRows(ctx.lease)
    with ctx.storage.scratch(f"video-{ctx.lease.job_id}") as work:
        stats = process_video(
            source,
            work / "out.mp4",
            params,
            on_progress=progress,
            model_path=settings.face_model,
            style_path=ctx.storage.local_path(params.style) if params.style else None,
            on_faces=rows.add,
        )
        rows.flush()
        outcome = Outcome(
            stats.frames,
            stats.fps,
            stats.width,
            stats.height,
            stats.seconds,
            1,
            stats.duration,
            stats.tracked,
            stats.searched,
            stats.lost,
            stats.first_lost,
        )
        finish(ctx.lease, ctx.storage, work / "out.mp4", outcome, params)


def _label(db_url: str, sha256: str) -> str:
    from atelier.models import Asset

    with session_scope(db_url) as session:
        label = session.scalar(select(Asset.label).where(Asset.sha256 == sha256))
    return label or f"video {sha256[:12]}"


def _segment_folder(lease: jobs.Lease) -> str:
    """Where an attempt's segments meet: a folder of the storage's work area."""
    return f"segments-{lease.job_id}-{lease.attempt}"


def _lease(settings: Settings, task: Task, job_id: int, attempt: int) -> jobs.Lease:
    return jobs.Lease(settings.resolved_database_url, job_id, attempt, worker_name(task))


class _Member(NamedTuple):
    """What a task of a segmented job's chord (a segment, the join) works with."""

    settings: Settings
    lease: jobs.Lease
    job: Any
    params: VideoParams
    storage: Storage
    folder: str  # where the attempt's segments meet


def _chord_member(task: Task, job_id: int, attempt: int) -> _Member:
    settings = get_settings()
    lease = _lease(settings, task, job_id, attempt)
    job = job_row(lease)
    params = VideoParams.model_validate(job.params)
    storage = open_storage(settings)
    return _Member(settings, lease, job, params, storage, _segment_folder(lease))


def _settle(
    task: Task, lease: jobs.Lease, max_attempts: int, error: Exception, about: str, at_limit: str
) -> None:
    """Settle a segment's or the join's error for the whole job: failed at the soft time limit
    (`at_limit` prefixing the reason), otherwise by the error policy (`about` prefixing the
    error), which sends the job again from its start (`VIDEO_FILTER`) when it is given back."""
    if at_time_limit(error):
        jobs.fail(lease, at_limit + time_limit_reason(task))
    else:
        settle_error(task, [(lease, max_attempts)], error, VIDEO_FILTER, about)


def _segment_result(key: str, stats: VideoStats) -> dict[str, Any]:
    """What a segment hands the join, through the chord's results (plain JSON): its stored
    file and the counts the job's outcome adds up."""
    return {
        "work": key,
        "frames": stats.frames,
        "seconds": stats.seconds,
        "width": stats.width,
        "height": stats.height,
        "fps": stats.fps,
        "duration": stats.duration,
        "start": stats.start,
        "tracked": stats.tracked,
        "searched": stats.searched,
        "lost": stats.lost,
        "first_lost": stats.first_lost,
    }


@shared_task(name=VIDEO_SEGMENT, base=JobTask, bind=True)
def segment(self: Task, job_id: int, attempt: int, index: int, start: int, end: int) -> dict:
    """Filter frames [start, end) into a video-only segment file; an error settles the job by
    the error policy (`settle_error`) and ends the chord."""
    from workers.video.pipeline import process_video

    settings, lease, job, params, storage, folder = _chord_member(self, job_id, attempt)
    key = f"{folder}/segment-{index:04d}.mp4"
    beat = [time.monotonic()]

    def progress(done: int, total: int) -> None:
        self.update_state(
            state="PROGRESS",
            meta={"job_id": job_id, "attempt": attempt, "segment": index, "frame": start + done}
            | {"of": end},
        )
        if time.monotonic() - beat[0] >= settings.heartbeat_seconds:
            beat[0] = time.monotonic()
            jobs.heartbeat(lease)  # raises on a cancel or a lost lease: the segment stops

    rows = FrameRows(lease, of=job.meta.get("frames"))
    try:
        jobs.heartbeat(lease)  # a segment of a replaced or cancelled attempt stops here
        with (
            keep_leases([lease], settings.heartbeat_seconds, lambda _: time.monotonic() - beat[0]),
            storage.scratch(f"segment-{job_id}-{index}") as work,
        ):
            out = work / "segment.mp4"
            stats = process_video(
                storage.local_path(job.inputs["video"]),
                out,
                params,
                start_frame=start,
                end_frame=end,
                with_audio=False,
                on_progress=progress,
                model_path=settings.face_model,
                style_path=storage.local_path(params.style) if params.style else None,
                on_faces=rows.add,
            )
            rows.flush()
            storage.put_work(key, out)
    except JobStopped:
        storage.drop_work(folder)  # this attempt's segments are of no use now
        raise
    except Exception as error:
        about = f"segment {index} (frames {start}-{end - 1}) "
        _settle(self, lease, job.max_attempts, error, about, at_limit=about)
        storage.drop_work(folder)
        raise
    return _segment_result(key, stats)


@shared_task(name=VIDEO_JOIN, base=JobTask, bind=True)
def join(self: Task, parts: list[dict], job_id: int, attempt: int) -> dict:
    """Concatenate the segments in order, each where the input's timestamps put it, mux the
    source's audio, store, finish the job."""
    from workers.video.encode import join_segments

    settings, lease, job, params, storage, folder = _chord_member(self, job_id, attempt)
    try:
        jobs.heartbeat(lease)
        with keep_leases([lease], settings.heartbeat_seconds), storage.scratch("join") as work:
            out = join_segments(
                [storage.get_work(p["work"], work / f"{i:04d}.mp4") for i, p in enumerate(parts)],
                storage.local_path(job.inputs["video"]),
                work / "joined.mp4",
                keep_audio=params.keep_audio,
                durations=[p["duration"] for p in parts],
                delay=parts[0]["start"],
            )
            outcome = Outcome(
                frames=sum(p["frames"] for p in parts),
                fps=parts[0]["fps"],
                width=parts[0]["width"],
                height=parts[0]["height"],
                seconds=sum(p["seconds"] for p in parts),
                segments=len(parts),
                duration=sum(p["duration"] for p in parts),
                frames_tracked=sum(p.get("tracked", 0) for p in parts),
                extra_detections=sum(p.get("searched", 0) for p in parts),
                faces_lost=sum(p.get("lost", 0) for p in parts),
                first_lost=next(
                    (p["first_lost"] for p in parts if p.get("first_lost") is not None), None
                ),
            )
            finish(lease, storage, out, outcome, params)
    except JobStopped as stop:
        log.info("job %s: %s", job_id, stop)
    except Exception as error:  # noqa: BLE001 - settled by the error policy
        _settle(self, lease, job.max_attempts, error, "", at_limit="joining segments ")
    finally:
        storage.drop_work(folder)
    warning = _warnings(lease.db_url, [job_id]).get(str(job_id))
    return {"job_id": job_id, "segments": len(parts), **({"warning": warning} if warning else {})}
