"""`atelier video`: filter the faces of a recorded video file, as a job."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from api.cli.runtime import build_params, console, runtime
from atelier.batches import create_video_job, ingest_image, ingest_video, send_plan
from atelier.db import session_scope
from atelier.errors import InputError
from atelier.models import Asset, Job, JobState
from atelier.schemas import DEPRECATED_FILTERS, VIDEO_FILTERS, VideoParams
from atelier.storage import Storage

FILTER_HELP = ", ".join(VIDEO_FILTERS) + " (stylize: old name of watercolor)"


def video_cmd(
    source: Annotated[Path, typer.Argument(help="A video file (mp4, mov, webm, avi, mkv).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.mp4, H.264).")],
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter",
            "-f",
            help=f"Face filter: {FILTER_HELP} (pixelate). On a board: its first filtered panel; "
            "not together with --filters.",
        ),
    ] = None,
    layout: Annotated[str | None, typer.Option(help="1x1 (default), 1x2 or 2x2 board.")] = None,
    filters: Annotated[
        str | None,
        typer.Option(help="Board panels after the original, e.g. blur,cartoon,sketch for 2x2."),
    ] = None,
    detector: Annotated[
        str | None,
        typer.Option(
            help="blazeface (default: MediaPipe's BlazeFace network on the frame and on 192 px "
            "tiles of a copy at most 640 px wide; faces from about 18 px at that width, tilted "
            "and turned ones too, at several network runs per frame), haar (OpenCV cascade: "
            "upright frontal faces of 10%+ of the frame height only) or dnn (YuNet; needs "
            "ATELIER_FACE_MODEL)."
        ),
    ] = None,
    detect_every: Annotated[
        int | None,
        typer.Option(
            help="Detect every N frames (2); the tracker interpolates between, bridges missed "
            "detections and holds each face 0.5 s past its last sighting. Larger N: faster, "
            "faces that move abruptly covered more loosely."
        ),
    ] = None,
    mask: Annotated[str | None, typer.Option(help="box (default) or ellipse.")] = None,
    padding: Annotated[float | None, typer.Option(help="Grow each face box by this share.")] = None,
    keep_audio: Annotated[
        bool, typer.Option("--keep-audio/--no-audio", help="Copy the input's audio.")
    ] = True,
    segment_seconds: Annotated[
        float | None, typer.Option(help="Split into segments of S seconds run in parallel.")
    ] = None,
    profile: Annotated[
        bool, typer.Option("--profile", help="Haar only: also run the profile-face cascade.")
    ] = False,
    style: Annotated[
        Path | None, typer.Option("--style", "-s", help="The painting of the painting filter.")
    ] = None,
    painting_frames: Annotated[
        bool, typer.Option("--painting-frames", help="Paint whole frames, not only faces.")
    ] = False,
) -> None:
    """Filter every face of a video and write the result with its audio."""
    asked = [filter_ or "", *(filters or "").split(",")]
    if any(name.strip() in DEPRECATED_FILTERS for name in asked):
        console.print(
            "[yellow]the `stylize` filter is now called `watercolor` (OpenCV's cv2.stylization);"
            " the old name still works but will go.[/yellow]"
        )
    rt = runtime()
    style_sha = None
    if style is not None:
        try:
            with session_scope(rt.db_url) as session:
                style_sha = ingest_image(session, rt.settings, style).sha256
        except InputError as error:
            raise typer.BadParameter(f"--style: {error}") from error
    params = build_params(
        VideoParams,
        filter=filter_,
        layout=layout,
        filters=tuple(f.strip() for f in filters.split(",")) if filters else None,
        detector=detector,
        detect_every=detect_every,
        mask=mask,
        padding=padding,
        keep_audio=keep_audio,
        segment_seconds=segment_seconds,
        profile=profile,
        style=style_sha,
        painting_frames=painting_frames,
    )
    if not source.is_file():
        raise typer.BadParameter(f"{source} is not a file")
    try:
        with session_scope(rt.db_url) as session:
            video = ingest_video(session, rt.settings, source).sha256
    except InputError as error:
        raise typer.BadParameter(str(error)) from error
    plan = create_video_job(rt.settings, video, params, label=source.name)
    job_id = plan.job_ids[0]
    console.print(f"job {job_id}: {source.name} → {out} ({', '.join(params.panel_filters())})")
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}")]
    try:
        with (
            rt.executing(["video", "default"]),
            Progress(*columns, TimeElapsedColumn(), console=console) as bar,
        ):
            send_plan(rt.app, rt.settings, plan)
            task = bar.add_task(f"job {job_id}", total=1.0, status="queued")

            def show(jobs: dict[int, Job]) -> None:
                job = jobs[job_id]
                frame = job.meta.get("frame")
                status = f"frame {frame}/{job.meta['of']}" if frame is not None else job.state
                bar.update(task, completed=job.progress, status=status)

            job = rt.wait([job_id], on_update=show)[job_id]
    except KeyboardInterrupt:
        console.print(f"\n[yellow]{rt.stopped_message(plan.batch_id, out.parent)}[/yellow]")
        raise typer.Exit(130) from None
    if job.state != JobState.SUCCEEDED:
        console.print(f"[red]job {job_id} {job.state}: {job.error or ''}[/red]")
        raise typer.Exit(1)
    with session_scope(rt.db_url) as session:
        result = session.get(Asset, job.result_asset_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Storage(rt.settings.resolved_storage_dir).path(result.sha256), out)
    meta = job.meta
    console.print(
        f"{out}: {meta['frames']} frames at {meta['fps']:g} fps, {meta['width']}x{meta['height']},"
        f" faces in {meta['frames_with_faces']} frames"
        f" ({meta.get('frames_tracked', 0)} kept covered by tracking through detection gaps),"
        f" {meta['processing_fps']} frames/s"
    )
