"""`atelier api`: serve the HTTP API and the gallery with uvicorn, configured by the settings."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.runtime import console, runtime


def api_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = (
        "127.0.0.1"
    ),
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
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the HTTP API (OpenAPI docs at /docs) and the gallery page (/).

    With a broker configured, jobs go to the deployment's workers. Embedded (no broker), this
    process also runs them, unless --no-run-jobs.
    """
    import uvicorn

    rt = runtime()
    if workers > 1 and rt.settings.embedded:
        raise typer.BadParameter(
            "more than 1 needs a broker (ATELIER_BROKER_URL)", param_hint="'--workers'"
        )
    where = f"http://{host}:{port}"
    mode = "embedded: jobs run in this process" if rt.settings.embedded else "broker mode"
    if rt.settings.embedded and not run_jobs:
        mode = "embedded, not running jobs: start `atelier worker` beside it"
    auth = "token required" if rt.settings.api_token else "no token (ATELIER_API_TOKEN unset)"
    console.print(f"Atelier API on {where} ({mode}; {auth}); docs at {where}/docs")
    options = {"host": host, "port": port, "log_level": log_level, "proxy_headers": True}
    if workers > 1:
        uvicorn.run("api.http.app:create_app", factory=True, workers=workers, **options)
        return
    from api.http.app import create_app

    app = create_app(rt.settings)
    if rt.settings.embedded and run_jobs:
        with rt.executing():
            uvicorn.run(app, **options)
        return
    uvicorn.run(app, **options)
