"""Entry point of the `atelier` command: every command is registered here, defined in its module."""

from __future__ import annotations

import logging

import typer

from api.cli import admin, flower, stylize, video
from api.cli.beat import beat_cmd
from api.cli.remote import submit_cmd
from api.cli.results import results_cmd
from api.cli.serve import api_cmd
from api.cli.status import status_cmd

app = typer.Typer(
    name="atelier",
    help="Batch neural style transfer and video face filters, run as jobs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("migrate")(admin.migrate_cmd)
app.command("worker")(admin.worker_cmd)
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


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log what happens.")) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
