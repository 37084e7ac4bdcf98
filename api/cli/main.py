"""Entry point of the `atelier` command: every command is registered here, defined in its module."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from api.cli import admin, doctor, flower, stylize, video, weights
from api.cli.beat import beat_cmd
from api.cli.remote import submit_cmd
from api.cli.results import results_cmd
from api.cli.serve import api_cmd
from api.cli.status import status_cmd
from api.cli.worker import worker_cmd
from atelier import __version__

app = typer.Typer(
    name="atelier",
    help="Batch neural style transfer and video face filters, run as jobs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("migrate")(admin.migrate_cmd)
app.command("worker")(worker_cmd)
app.command("ping")(admin.ping_cmd)
app.command("beat")(beat_cmd)
app.command("flower")(flower.flower_cmd)
app.command("stylize")(stylize.stylize_cmd)
app.command("losses")(stylize.losses_cmd)
app.command("demo")(stylize.demo_cmd)
app.command("video")(video.video_cmd)
app.command("status")(status_cmd)
app.command("results")(results_cmd)
app.command("api")(api_cmd)
app.command("submit")(submit_cmd)
app.command("doctor")(doctor.doctor_cmd)
app.add_typer(weights.app, name="weights")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"atelier {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Log what happens, TensorFlow's own start-up lines too."
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
