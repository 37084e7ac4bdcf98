"""`atelier api`: serve the HTTP API and the gallery with uvicorn, configured by the settings.

An API that anyone on a network can use is never the default: without a token it serves only on
a loopback address, unless `--insecure-no-auth` says that an open API is meant. With
`ATELIER_API_TOKEN_FILE` set and no token, it writes a random token to that file first (the
compose file does this), so a deployment that was given no token still gets one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from api.cli.runtime import console, is_loopback, runtime
from atelier.settings import Settings, get_settings


def ensure_token_file(path: Path) -> tuple[str, bool]:
    """The token kept in `path`, written there (random, readable by this user only) when the
    file does not exist yet; returns it and whether it was written now."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another API process wrote it first, or it was there all along
        existing = path.read_text().strip()
        if not existing:
            raise typer.BadParameter(
                f"{path} is empty: put a token in it or remove it",
                param_hint="ATELIER_API_TOKEN_FILE",
            ) from None
        return existing, False
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token, True


def _guarded_settings(host: str, insecure_no_auth: bool) -> Settings:
    """The settings with the API's token (from `ATELIER_API_TOKEN_FILE`, written there first
    when missing); exits with status 2 rather than serve a non-loopback `host` without one,
    unless `insecure_no_auth`."""
    settings = get_settings()
    if not settings.api_token and settings.api_token_file is not None:
        token, written = ensure_token_file(settings.api_token_file)
        settings = settings.model_copy(update={"api_token": token})
        if written:
            console.print(f"wrote a new API token to {settings.api_token_file}")
    if not settings.api_token and not is_loopback(host) and not insecure_no_auth:
        console.print(
            f"[red]refusing to serve on {host} without a token:[/red] anyone who can reach it "
            "could read, submit and cancel every job. Set ATELIER_API_TOKEN (or "
            "ATELIER_API_TOKEN_FILE), listen on 127.0.0.1 (the default), or pass "
            "--insecure-no-auth if an open API is really meant."
        )
        raise typer.Exit(2)
    return settings


def _serving(where: str, embedded: bool, run_jobs: bool, settings: Settings) -> str:
    """The line that says where the API serves, who runs its jobs and whether it needs a token."""
    mode = "embedded: jobs run in this process" if embedded else "broker mode"
    if embedded and not run_jobs:
        mode = "embedded, not running jobs: start `atelier worker` beside it"
    if settings.api_token:
        auth = "token required"
    else:
        auth = "[yellow]no token: open to anyone who can reach it[/yellow]"
    return f"Atelier API on {where} ({mode}; {auth}); docs at {where}/docs"


def api_cmd(
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on (0.0.0.0: every interface; anything but a loopback "
            "address needs a token or --insecure-no-auth)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Server processes (deployments with a broker).")
    ] = 1,
    run_jobs: Annotated[
        bool,
        typer.Option(
            "--run-jobs/--no-run-jobs",
            help="Embedded mode only: also run submitted jobs in this process.",
        ),
    ] = True,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Serve without a token on a non-loopback address: anyone who reaches it may "
            "read, submit and cancel everything.",
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) and the gallery page (/).

    With a broker configured, jobs go to the deployment's workers. Embedded (no broker), this
    process also runs them, unless --no-run-jobs.
    """
    import uvicorn

    settings = _guarded_settings(host, insecure_no_auth)
    rt = runtime()
    if workers > 1 and rt.settings.embedded:
        raise typer.BadParameter(
            "more than 1 needs a broker (ATELIER_BROKER_URL)", param_hint="'--workers'"
        )
    console.print(_serving(f"http://{host}:{port}", rt.settings.embedded, run_jobs, settings))
    options = {"host": host, "port": port, "log_level": log_level, "proxy_headers": True}
    if workers > 1:
        # Each server process reads the settings again (the token file exists by now).
        uvicorn.run("api.http.app:create_app", factory=True, workers=workers, **options)
        return
    from api.http.app import create_app

    app = create_app(rt.settings.model_copy(update={"api_token": settings.api_token}))
    if rt.settings.embedded and run_jobs:
        with rt.executing():
            uvicorn.run(app, **options)
        return
    uvicorn.run(app, **options)
