"""`atelier flower`: Flower, the Celery monitor, on the deployment's broker, behind a password.

Flower shows every task's arguments and can shut workers down, so it refuses to start without
credentials unless told plainly (`--no-auth`, on a loopback address only) that this is a local
look. Flower 2.2 answers
`/metrics` (task names, worker host names) and `/healthcheck` to anyone, whatever its auth, and has
no option to change that, so it listens on the loopback interface unless `--address` says
otherwise: reach it from elsewhere through a reverse proxy that asks for credentials on every
path. It runs in this process on the app built from the settings, so it watches exactly the broker
the workers use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from api.cli.runtime import console, is_loopback
from atelier.celery_app import create_app
from atelier.settings import Settings, get_settings

STATE_SAVE_MS = 60_000  # persistent mode also saves on a clean stop; this bounds a crash's loss


def flower_cmd(
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="HTTP port; default ATELIER_FLOWER_PORT (5555)."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            help="Interface to listen on; default 127.0.0.1 (Flower's /metrics and /healthcheck "
            "answer without the password: expose it through a proxy that asks for one)."
        ),
    ] = None,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth",
            help="Run without a password, for a look on this machine only (refused with a "
            "non-loopback --address).",
        ),
    ] = False,
    persistent: Annotated[
        bool,
        typer.Option(help="Keep the tasks and workers seen across restarts, in --db."),
    ] = True,
    db: Annotated[
        Path | None,
        typer.Option(help="Flower's state file; default <ATELIER_DATA_DIR>/flower.db."),
    ] = None,
) -> None:
    """Run Flower, the web monitor of workers and tasks, on the deployment's Redis broker."""
    settings = get_settings()
    address = address or "127.0.0.1"
    _refuse_what_cannot_work(settings, address, no_auth)
    argv = ["flower", f"--port={port or settings.flower_port}", f"--address={address}"]
    if no_auth:
        # Flower's HTTP API answers 401 to everyone unless it has credentials or is told
        # explicitly that an open API is wanted.
        os.environ["FLOWER_UNAUTHENTICATED_API"] = "true"
    else:
        argv.append(f"--basic_auth={_credentials(settings.flower_user, settings.flower_password)}")
    if persistent:
        state = (db or settings.resolved_data_dir / "flower.db").expanduser().resolve()
        state.parent.mkdir(parents=True, exist_ok=True)
        argv += ["--persistent=True", f"--db={state}", f"--state_save_interval={STATE_SAVE_MS}"]
    app = create_app(settings)
    if not is_loopback(address):
        console.print(
            f"[yellow]Flower listens on {address or 'every interface'}: its /metrics and "
            "/healthcheck answer without the password there.[/yellow]"
        )
    console.print(
        f"Flower on {address or 'every interface'}, port {port or settings.flower_port}, broker "
        f"{app.connection().as_uri()}, "
        + ("[yellow]no authentication[/yellow]" if no_auth else f"user {settings.flower_user}")
    )
    # The arguments go to Flower inside this process, so the password never shows in `ps`.
    raise typer.Exit(app.start(argv) or 0)


def _refuse_what_cannot_work(settings: Settings, address: str, no_auth: bool) -> None:
    """Exit with status 2, saying why, when there is no broker to watch or when `--no-auth`
    would open Flower beyond this machine."""
    if settings.embedded:
        console.print(
            "[red]Flower watches workers through a broker, and none is configured.[/red] "
            "The embedded default runs its worker inside each command, with remote control "
            "off, so there is nothing for Flower to watch. Set ATELIER_BROKER_URL "
            "(e.g. redis://127.0.0.1:6379/0) to the broker your workers use."
        )
        raise typer.Exit(2)
    if no_auth and not is_loopback(address):
        console.print(
            f"[red]--no-auth is for a look from this machine only, not on {address}:[/red] "
            "anyone who reaches it could see every task's arguments and shut workers down. "
            "Set ATELIER_FLOWER_PASSWORD, or listen on 127.0.0.1."
        )
        raise typer.Exit(2)


def _credentials(user: str, password: str | None) -> str:
    """`user:password` for Flower's basic auth, refused when it could not work as meant."""
    if not password or not password.strip():
        console.print(
            "[red]ATELIER_FLOWER_PASSWORD is not set (or blank).[/red] Flower shows every "
            "task's arguments and can shut workers down, so it does not start without a "
            "password. Set "
            "ATELIER_FLOWER_PASSWORD (and ATELIER_FLOWER_USER, default admin), or pass "
            "--no-auth to look at it from this machine only."
        )
        raise typer.Exit(2)
    if ":" in user or "," in user + password:
        # Flower splits its credential list on commas and each entry on the first colon.
        console.print(
            "[red]ATELIER_FLOWER_USER may not contain ':' and neither setting may contain ','.[/]"
        )
        raise typer.Exit(2)
    return f"{user}:{password}"
