"""`atelier video`: filter the faces of a recorded video file, as a job."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from api.cli.options import VIDEO, GivenParams, with_params
from api.cli.runtime import Runtime, console, runtime
from atelier.batches import create_video_job, ingest_image, ingest_video, send_plan
from atelier.db import session_scope
from atelier.errors import InputError
from atelier.models import Asset, Job, JobState
from atelier.schemas import DEPRECATED_FILTERS


@with_params(VIDEO)
def video_cmd(
    source: Annotated[Path, typer.Argument(help="A video file (mp4, mov, webm, avi, mkv).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.mp4, H.264).")],
    style: Annotated[
        Path | None, typer.Option("--style", "-s", help="The painting of the painting filter.")
    ] = None,
    *,
    given: GivenParams,
) -> None:
    """Filter every face of a video and write the result with its audio."""
    typed = given.values.get(VIDEO.name, {})
    if any(name in DEPRECATED_FILTERS for name in (typed.get("filter"), *typed.get("filters", ()))):
        console.print(
            "[yellow]the `stylize` filter is now called `watercolor` (OpenCV's cv2.stylization);"
            " the old name still works but will go.[/yellow]"
        )
    named = {"style": "--style"}  # the schema's `style` is the sha of the --style file
    if style is None:  # checked before anything is opened or stored
        params = given.with_values(VIDEO, {}, flags=named).build(VIDEO)
    if not source.is_file():
        raise typer.BadParameter(f"{source} is not a file", param_hint="'SOURCE'")
    rt = runtime()
    if style is not None:
        painting = _ingest(rt, ingest_image, style, "'--style'")
        params = given.with_values(VIDEO, {"style": painting}, flags=named).build(VIDEO)
    video = _ingest(rt, ingest_video, source, "'SOURCE'")
    plan = create_video_job(rt.settings, video, params, label=source.name)
    job_id = plan.job_ids[0]
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}")]
    try:
        # Inside the try: a Ctrl-C as soon as the job's number is shown still says how to go on.
        console.print(f"job {job_id}: {source.name} → {out} ({', '.join(params.panel_filters())})")
        with (
            rt.executing(["video", "default"]),
            Progress(*columns, TimeElapsedColumn(), console=console) as bar,
        ):
            send_plan(rt.app, rt.settings, plan)
            rt.warn_if_unconsumed(plan.task_name, bar.console)
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
    rt.storage.copy_to(result.sha256, out)
    _say_done(out, job)


def _ingest(rt: Runtime, ingest: Callable[..., Asset], path: Path, hint: str) -> str:
    """Store an input file and record its asset; an unusable file is the option's error."""
    try:
        with session_scope(rt.db_url) as session:
            return ingest(session, rt.settings, path).sha256
    except InputError as error:
        raise typer.BadParameter(str(error), param_hint=hint) from error


def _say_done(out: Path, job: Job) -> None:
    """What the finished job made and found, and its warning (no face found, a face lost)."""
    meta = job.meta
    console.print(
        f"{out}: {meta['frames']} frames at {meta['fps']:g} fps, {meta['width']}x{meta['height']},"
        f" faces in {meta['frames_with_faces']} frames"
        f" ({meta.get('frames_tracked', 0)} kept covered by tracking through detection gaps;"
        f" motion cost {meta.get('extra_detections', 0)} extra detections),"
        f" {meta['processing_fps']} frames/s"
    )
    if job.warning:
        console.print(f"[yellow]warning: {job.warning}[/yellow]")
