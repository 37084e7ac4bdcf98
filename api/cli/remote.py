"""`atelier submit --api URL`: the same grids and videos, sent to a remote Atelier over HTTP.

Nothing here touches a local database or broker: files are uploaded to `POST /v1/assets`, the
batch is created with `POST /v1/batches` or `POST /v1/videos`, and progress is read from
`GET /v1/batches/{id}`. Parameters are validated locally first with the shared schemas, so a
typo fails before anything is uploaded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from pydantic import BaseModel, ValidationError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from api.cli.runtime import console
from api.cli.stylize import expand
from atelier.export import safe_stem
from atelier.schemas import NSTParams, VideoParams

SUFFIX = {"image/png": ".png", "image/jpeg": ".jpg", "video/mp4": ".mp4"}


class RemoteError(Exception):
    """The API refused a request or could not be reached; the message says which."""


class Remote:
    """A small client of the Atelier HTTP API."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout, connect=10)
        )

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise RemoteError(f"cannot reach {self.url}: {error}") from error
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except ValueError:
                message = response.text[:500]
            raise RemoteError(f"{method} {path}: {response.status_code} {message}")
        return response

    def upload(self, path: Path) -> str:
        with path.open("rb") as handle:
            response = self.call(
                "POST",
                "/v1/assets",
                params={"label": path.name[:255]},
                content=handle,
                headers={"Content-Type": "application/octet-stream"},
            )
        return response.json()["sha256"]

    def download(self, path: str, target: Path) -> None:
        try:
            with self.http.stream("GET", path) as response:
                if response.status_code >= 400:
                    raise RemoteError(f"GET {path}: {response.status_code}")
                with target.open("wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
        except httpx.HTTPError as error:
            raise RemoteError(f"cannot download {path}: {error}") from error


def _parse_params(model: type[BaseModel], flags: dict[str, Any], extra: list[str]) -> Any:
    """Flags plus `--param key=value` pairs (values read as JSON when they parse), validated."""
    values = {k: v for k, v in flags.items() if v is not None}
    for item in extra:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--param takes key=value, not {item!r}")
        try:
            values[key.strip().replace("-", "_")] = json.loads(raw)
        except ValueError:
            values[key.strip().replace("-", "_")] = raw
    try:
        return model.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in error.errors()
        )
        raise typer.BadParameter(problems) from error


def _wait(remote: Remote, batch: dict[str, Any]) -> dict[str, Any]:
    columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}")]
    with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(f"batch {batch['id']}", total=batch["total"], status="")
        while True:
            batch = remote.call("GET", f"/v1/batches/{batch['id']}").json()
            counts = ", ".join(f"{n} {state}" for state, n in batch["counts"].items())
            bar.update(task, completed=batch["progress"] * batch["total"], status=counts)
            if batch["finished"]:
                return batch
            time.sleep(1.0)


def _download(remote: Remote, batch: dict[str, Any], names: dict[str, str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for job in batch["jobs"]:
        if job["state"] != "succeeded" or not job["result"]:
            continue
        inputs = job["inputs"]
        if job["kind"] == "nst":
            styles = inputs.get("styles", [])
            style = names.get(styles[0], "style") if len(styles) == 1 else "blend"
            stem = f"{names.get(inputs.get('content', ''), 'content')}__{style}"
            remote.download(f"/v1/jobs/{job['id']}/losses?format=csv", out / f"{stem}.losses.csv")
            remote.download(f"/v1/jobs/{job['id']}/losses?format=png", out / f"{stem}.loss.png")
        else:
            stem = f"{names.get(inputs.get('video', ''), 'video')}__job-{job['id']}"
        suffix = SUFFIX.get(job["result"]["media_type"], ".bin")
        remote.download(f"/v1/jobs/{job['id']}/result", out / f"{stem}{suffix}")
    if batch.get("sheet_url"):
        remote.download(batch["sheet_url"], out / "sheet.png")
    (out / "batch.json").write_text(json.dumps(batch, indent=2))
    console.print(f"results written to {out}")


def submit_cmd(
    content: Annotated[
        list[Path] | None, typer.Argument(help="Content images or folders of images.")
    ] = None,
    style: Annotated[
        list[Path] | None, typer.Option("--style", "-s", help="Style image or folder; repeat.")
    ] = None,
    video: Annotated[Path | None, typer.Option(help="A video to filter instead of a grid.")] = None,
    api: Annotated[
        str, typer.Option("--api", envvar="ATELIER_API_URL", help="Base URL of the Atelier API.")
    ] = "http://127.0.0.1:8000",
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="ATELIER_API_TOKEN", help="The API's bearer token."),
    ] = None,
    size: Annotated[int | None, typer.Option(help="NST: longest side of the output.")] = None,
    iterations: Annotated[int | None, typer.Option(help="NST: optimizer steps.")] = None,
    style_weight: Annotated[float | None, typer.Option(help="NST: style loss weight.")] = None,
    content_weight: Annotated[float | None, typer.Option(help="NST: content loss weight.")] = None,
    tv_weight: Annotated[float | None, typer.Option(help="NST: total-variation weight.")] = None,
    seed: Annotated[int | None, typer.Option(help="NST: random seed.")] = None,
    engine: Annotated[
        str | None, typer.Option(help="NST: gatys (default) or fast (Magenta network).")
    ] = None,
    video_filter: Annotated[
        str | None, typer.Option("--filter", help="Video: filter on faces (pixelate, blur...).")
    ] = None,
    layout: Annotated[str | None, typer.Option(help="Video: 1x1, 1x2 or 2x2 board.")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Any other parameter as key=value; repeat."),
    ] = None,
    label: Annotated[str | None, typer.Option(help="A name for the batch.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute identical jobs.")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Follow progress.")] = True,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Download results here when done.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per HTTP request.")] = 300.0,
) -> None:
    """Submit a content x style grid, or a video, to a remote Atelier API and follow it."""
    if video is not None and (content or style):
        raise typer.BadParameter("give content and --style images, or --video, not both")
    if video is None and (not content or not style):
        raise typer.BadParameter("give content images and at least one --style (or --video)")
    if video is not None:
        params = _parse_params(VideoParams, {"filter": video_filter, "layout": layout}, param or [])
    else:
        flags = {
            "size": size,
            "iterations": iterations,
            "style_weight": style_weight,
            "content_weight": content_weight,
            "tv_weight": tv_weight,
            "seed": seed,
            "engine": engine,
        }
        params = _parse_params(NSTParams, flags, param or [])
    remote = Remote(api, token, timeout)
    names: dict[str, str] = {}
    try:
        if video is not None:
            if not video.is_file():
                raise typer.BadParameter(f"{video} is not a file")
            sha = remote.upload(video)
            names[sha] = safe_stem(video.name, "video")
            body = {"video": sha, "params": params.model_dump(mode="json"), "label": label}
            batch = remote.call("POST", "/v1/videos", json=body).json()
        else:
            shas: dict[str, list[str]] = {"content": [], "styles": []}
            for role, paths in (("content", content or []), ("styles", style or [])):
                for path in expand(paths):
                    sha = remote.upload(path)
                    names[sha] = safe_stem(path.name, sha[:12])
                    shas[role].append(sha)
            body = {
                **shas,
                "params": params.model_dump(mode="json", exclude_none=True),
                "label": label,
                "force": force,
            }
            batch = remote.call("POST", "/v1/batches", json=body).json()
    except RemoteError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    follow = f"{remote.url}/v1/batches/{batch['id']}"
    console.print(
        f"batch {batch['id']}: {batch['total']} job(s), {batch['reused']} reused; {follow}"
    )
    if not wait:
        return
    try:
        batch = _wait(remote, batch)
        if out is not None:
            _download(remote, batch, names, out)
    except KeyboardInterrupt:
        console.print(
            f"\n[yellow]stopped waiting; batch {batch['id']} keeps running on the server. "
            f"Follow it at {follow} or {remote.url}/ (the gallery).[/yellow]"
        )
        raise typer.Exit(130) from None
    except RemoteError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    counts = ", ".join(f"{n} {state}" for state, n in batch["counts"].items())
    console.print(f"batch {batch['id']} finished: {counts}")
    if batch["counts"].get("succeeded", 0) != batch["total"]:
        raise typer.Exit(1)
