"""`atelier submit --api URL`: the same grids and videos, sent to a remote Atelier over HTTP.

Nothing here touches a local database or broker: files are uploaded to `POST /v1/assets`, the
batch is created with `POST /v1/batches` or `POST /v1/videos`, and progress is read from
`GET /v1/batches/{id}`. Parameters are validated locally first with the shared schemas, so a
typo fails before anything is uploaded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from api.cli.options import NST, VIDEO, GivenParams, with_params
from api.cli.runtime import BYTES_COLUMNS, console
from api.cli.stylize import expand
from atelier.export import cell_stem, safe_stem
from atelier.grid import varying

CHUNK = 1 << 16
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

    def upload(self, path: Path, bar: Progress, task: TaskID) -> str:
        """Stream a file to `POST /v1/assets`, advancing `task` of `bar` by the bytes sent."""
        size = path.stat().st_size

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    bar.advance(task, len(chunk))
                    yield chunk

        response = self.call(
            "POST",
            "/v1/assets",
            params={"label": path.name[:255]},
            content=chunks(),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        return response.json()["sha256"]

    def download(self, path: str, target: Path, bar: Progress, task: TaskID) -> None:
        """Stream `GET path` into `target`; its size joins `task`'s total as it becomes known.
        A redirect (an API serving files from an object store by presigned URL) is followed;
        httpx does not send the bearer token to another host."""
        try:
            with self.http.stream("GET", path, follow_redirects=True) as response:
                if response.status_code >= 400:
                    raise RemoteError(f"GET {path}: {response.status_code}")
                length = int(response.headers.get("Content-Length", 0))
                known = next(t.total for t in bar.tasks if t.id == task) or 0
                bar.update(task, total=known + length)
                with target.open("wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
                        bar.advance(task, len(chunk))
        except httpx.HTTPError as error:
            raise RemoteError(f"cannot download {path}: {error}") from error


def _params(given: GivenParams, is_video: bool, pairs: list[str]) -> Any:
    """The job's parameters from the options and `-p` pairs; options of the other kind of job
    are refused by name rather than ignored."""
    group, other = (VIDEO, NST) if is_video else (NST, VIDEO)
    if stray := given.given(other):
        what = "a video" if is_video else "a style transfer grid"
        raise typer.BadParameter(f"{other.panel.lower()} do not apply to {what}", param_hint=stray)
    given = given.with_pairs(pairs, group.model)
    # A grid is validated value by value here, before anything is uploaded; the API expands it.
    return given.build(group) if is_video else given.build_grid(group)


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
    wanted: list[tuple[str, Path]] = []
    axes = varying([job["params"] for job in batch["jobs"] if job["kind"] == "nst"])
    for job in batch["jobs"]:
        if job.get("warning"):
            console.print(f"[yellow]job {job['id']}: warning: {job['warning']}[/yellow]")
        if job["state"] != "succeeded" or not job["result"]:
            continue
        inputs = job["inputs"]
        if job["kind"] == "nst":
            stem = cell_stem(names, inputs, job["params"], axes)
            if job["params"].get("engine") != "fast":  # the fast engine has no loss history
                losses = f"/v1/jobs/{job['id']}/losses?format="
                wanted.append((f"{losses}csv", out / f"{stem}.losses.csv"))
                wanted.append((f"{losses}png", out / f"{stem}.loss.png"))
        else:
            stem = f"{names.get(inputs.get('video', ''), 'video')}__job-{job['id']}"
        suffix = SUFFIX.get(job["result"]["media_type"], ".bin")
        wanted.append((f"/v1/jobs/{job['id']}/result", out / f"{stem}{suffix}"))
    if batch.get("sheet_url"):
        wanted.append((batch["sheet_url"], out / "sheet.png"))
    with Progress(*BYTES_COLUMNS, console=console) as bar:
        task = bar.add_task(f"downloading {len(wanted)} file(s)", total=0)
        for url, target in wanted:
            remote.download(url, target, bar, task)
    (out / "batch.json").write_text(json.dumps(batch, indent=2))
    console.print(f"results written to {out}")


def _upload(remote: Remote, paths: list[Path]) -> list[str]:
    """Upload files with one progress bar over all their bytes; their hashes, in order."""
    total = sum(path.stat().st_size for path in paths)
    with Progress(*BYTES_COLUMNS, console=console) as bar:
        task = bar.add_task(f"uploading {len(paths)} file(s)", total=total)
        return [remote.upload(path, bar, task) for path in paths]


@with_params(NST, VIDEO)
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
    *,
    given: GivenParams,
) -> None:
    """Submit a content x style grid, or a video, to a remote Atelier API and follow it."""
    if video is not None and (content or style):
        raise typer.BadParameter(
            "give content and --style images, or --video, not both", param_hint="'--video'"
        )
    if video is None and (not content or not style):
        raise typer.BadParameter(
            "give content images and at least one --style (or --video)",
            param_hint="'CONTENT' / '--style'",
        )
    params = _params(given, video is not None, param or [])
    remote = Remote(api, token, timeout)
    names: dict[str, str] = {}
    try:
        remote.call("GET", "/v1/batches", params={"limit": 1})  # a wrong token: before uploads
        if video is not None:
            batch = _send_video(remote, video, params, label, names)
        else:
            body = {"label": label, "force": force}
            batch = _send_grid(remote, content or [], style or [], params, body, names)
    except RemoteError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    follow = f"{remote.url}/v1/batches/{batch['id']}"
    console.print(
        f"batch {batch['id']}: {batch['total']} job(s), {batch['reused']} reused; {follow}"
    )
    for warning in batch.get("warnings", []):
        console.print(f"[yellow]warning from the API: {warning}[/yellow]", soft_wrap=True)
    if wait:
        _follow(remote, batch, names, out)


def _send_video(
    remote: Remote, video: Path, params: Any, label: str | None, names: dict[str, str]
) -> dict[str, Any]:
    """Upload the video and create its batch; `names` learns the video's file name."""
    if not video.is_file():
        raise typer.BadParameter(f"{video} is not a file", param_hint="'--video'")
    (sha,) = _upload(remote, [video])
    names[sha] = safe_stem(video.name, "video")
    body = {"video": sha, "params": params.model_dump(mode="json"), "label": label}
    return remote.call("POST", "/v1/videos", json=body).json()


def _send_grid(
    remote: Remote,
    content: list[Path],
    style: list[Path],
    params: Any,
    body: dict[str, Any],
    names: dict[str, str],
) -> dict[str, Any]:
    """Upload the grid's images and create its batch (`body` adds label and force); `names`
    learns each image's file name."""
    files = {"content": expand(content, "'CONTENT'"), "styles": expand(style, "'--style'")}
    sent = iter(_upload(remote, [*files["content"], *files["styles"]]))
    shas: dict[str, list[str]] = {"content": [], "styles": []}
    for role, paths in files.items():
        for path in paths:
            sha = next(sent)
            names[sha] = safe_stem(path.name, sha[:12])
            shas[role].append(sha)
    body = {**shas, "params": params.model_dump(mode="json", exclude_none=True), **body}
    return remote.call("POST", "/v1/batches", json=body).json()


def _follow(remote: Remote, batch: dict[str, Any], names: dict[str, str], out: Path | None) -> None:
    """Follow the batch to its end, download its results into `out` if given, and exit 1
    unless every job succeeded."""
    try:
        batch = _wait(remote, batch)
        if out is not None:
            _download(remote, batch, names, out)
    except KeyboardInterrupt:
        console.print(
            f"\n[yellow]stopped waiting; batch {batch['id']} keeps running on the server. "
            f"Follow it at {remote.url}/v1/batches/{batch['id']} or {remote.url}/ "
            "(the gallery).[/yellow]"
        )
        raise typer.Exit(130) from None
    except RemoteError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    counts = ", ".join(f"{n} {state}" for state, n in batch["counts"].items())
    console.print(f"batch {batch['id']} finished: {counts}")
    if batch["counts"].get("succeeded", 0) != batch["total"]:
        raise typer.Exit(1)
