"""`atelier doctor`: check the configuration and say what is missing and how to fix it.

The first command to run when something does not work. Every check reads the settings as the
other commands would and touches the real thing (connects to the database and the broker, looks
for the weights and model files, runs TensorFlow in a child process); nothing is changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from sqlalchemy import text
from sqlalchemy.engine import make_url

from atelier.diskspace import free_space
from atelier.settings import Settings, get_settings
from atelier.weights import WEIGHTS_FILE, how_to_provide, keras_models_dir, weights_path
from atelier.weights_fetch import verify

LOW_DISK = 2 * 1024**3  # a warning below this much free space in storage
TENSORFLOW_PROBE = (
    "import tensorflow as tf; "
    "print('|'.join(d.name for d in tf.config.list_physical_devices('GPU')))"
)


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass
class Check:
    """One finding: what was checked, how it stands, what was seen, and what to do about it."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def _first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"


def check_database(settings: Settings) -> Check:
    from atelier.db import current_revision, get_engine

    url = settings.resolved_database_url
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        with get_engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))
        revision = current_revision(url)
    except Exception as error:  # noqa: BLE001 - any failure is the finding
        return Check(
            "database",
            Status.FAIL,
            f"cannot connect to {shown}: {_first_line(error)}",
            "start the database server, or correct ATELIER_DATABASE_URL"
            " (unset, Atelier uses SQLite in ATELIER_DATA_DIR)",
        )
    head = _head_revision()
    if revision != head:
        return Check(
            "database",
            Status.WARN,
            f"{shown} is at schema revision {revision or 'none'}, the code at {head}",
            "run `atelier migrate` (every command also migrates on start)",
        )
    return Check("database", Status.OK, f"{shown}, schema at {head}")


def _head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    from atelier.db import MIGRATIONS

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def check_broker(settings: Settings) -> Check:
    if settings.embedded:
        return Check(
            "broker",
            Status.OK,
            f"embedded (files in {settings.broker_folder}): each command runs its own jobs",
        )
    from kombu.utils.url import maybe_sanitize_url

    from atelier.celery_app import create_app

    app = create_app(settings)
    shown = maybe_sanitize_url(settings.resolved_broker_url)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as error:  # noqa: BLE001 - any failure is the finding
        return Check(
            "broker",
            Status.FAIL,
            f"cannot reach {shown}: {_first_line(error)}",
            "start Redis there (e.g. `redis-server`), correct ATELIER_BROKER_URL, or unset it to"
            " run embedded (jobs run inside each command)",
        )
    return Check("broker", Status.OK, shown)


def check_queues(settings: Settings) -> Check:
    """Every queue and the workers consuming it, as the running workers say (Celery's
    `inspect().active_queues()`); a queue without a worker fails: its jobs would wait for ever."""
    if settings.embedded:
        return Check(
            "queues",
            Status.OK,
            "embedded: each command runs a worker of its own on the queues it sends to",
        )
    from atelier.celery_app import create_app
    from atelier.consumers import START, queue_consumers

    try:
        consumers = queue_consumers(create_app(settings))
    except Exception as error:  # noqa: BLE001 - any failure is the finding
        return Check(
            "queues",
            Status.FAIL,
            f"cannot ask the workers which queues they consume: {_first_line(error)}",
            "check the broker (above)",
        )
    listed = "; ".join(
        f"{queue}: {', '.join(workers) if workers else 'NO WORKER'}"
        for queue, workers in consumers.items()
    )
    idle = [queue for queue, workers in consumers.items() if not workers]
    if idle:
        starts = "; ".join(f"`{START.get(q, f'atelier worker --queues {q}')}`" for q in idle)
        return Check(
            "queues",
            Status.FAIL,
            f"{listed} (jobs sent to {', '.join(idle)} wait until a worker consumes it)",
            f"start a worker for each: {starts}",
        )
    return Check("queues", Status.OK, listed)


def check_storage(settings: Settings) -> Check:
    """The object store's bucket answers (read-only: head and list); a local folder is
    checked by the disk check."""
    from atelier.storage import open_storage

    storage = open_storage(settings)
    if not storage.remote:
        return Check("storage", Status.OK, f"folder {storage.describe()}")
    try:
        detail = storage.check()  # type: ignore[attr-defined]
    except Exception as error:  # noqa: BLE001 - any failure is the finding
        return Check(
            "storage",
            Status.FAIL,
            f"{storage.describe()}: {_first_line(error)}",
            "create the bucket, or correct ATELIER_STORAGE_URL and the AWS settings"
            " (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE)",
        )
    return Check("storage", Status.OK, detail)


def check_weights(settings: Settings) -> Check:
    """The file the spec names, checked against the Keras file's size and md5."""
    spec = settings.vgg_weights.strip()
    if spec.lower() == "none":
        return Check(
            "VGG19 weights",
            Status.WARN,
            "none: random weights, which test the pipeline but do not paint",
            how_to_provide().replace(" ATELIER_VGG_WEIGHTS=none runs", " `none` runs"),
        )
    path = weights_path(spec) or keras_models_dir() / WEIGHTS_FILE
    verdict = verify(path)
    if verdict.verified:
        return Check("VGG19 weights", Status.OK, f"{spec}: {path}, verified ({verdict.detail})")
    if verdict.state == "missing" and spec.lower() == "imagenet":
        return Check(
            "VGG19 weights",
            Status.WARN,
            f"imagenet: {path} is not there yet; the first NST job downloads it (needs network)",
            how_to_provide(),
        )
    if verdict.state == "missing":
        return Check("VGG19 weights", Status.FAIL, f"{path} does not exist", how_to_provide())
    if spec.lower() == "imagenet":
        return Check(
            "VGG19 weights",
            Status.FAIL,
            f"imagenet: {path} is corrupt ({verdict.detail})",
            "run `atelier weights fetch`: it replaces the file with a verified one",
        )
    return Check(
        "VGG19 weights",
        Status.WARN,
        f"{path} is not Keras' ImageNet file ({verdict.detail}); jobs load it as VGG19 weights",
        f"for the ImageNet weights: `atelier weights fetch --to {path}`",
    )


def check_face_model(settings: Settings) -> Check:
    model = settings.face_model
    if model is None:
        return Check(
            "face model",
            Status.OK,
            "none set: only the dnn detector needs one (the default, centerface, is bundled)",
        )
    path = Path(model).expanduser()
    if path.is_file():
        return Check("face model", Status.OK, str(path))
    return Check(
        "face model",
        Status.FAIL,
        f"ATELIER_FACE_MODEL={model} does not exist",
        "point ATELIER_FACE_MODEL at a YuNet ONNX file (face_detection_yunet_*.onnx), or unset"
        " it and use the default detector (`--detector centerface`)",
    )


def check_ffmpeg(_settings: Settings) -> Check:
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        done = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30)
    except Exception as error:  # noqa: BLE001 - any failure is the finding
        return Check(
            "ffmpeg",
            Status.FAIL,
            _first_line(error),
            "reinstall Atelier's dependencies (`pip install imageio-ffmpeg`)",
        )
    version = (done.stdout.splitlines() or ["?"])[0]
    return Check("ffmpeg", Status.OK, f"{exe} ({version[:60]})")


def check_gpu(_settings: Settings) -> Check:
    """TensorFlow in a child process: its start-up chatter stays out of this report."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", TENSORFLOW_PROBE],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
    except subprocess.TimeoutExpired:
        return Check("GPU", Status.WARN, "TensorFlow did not start within 180 s", "")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return Check(
            "GPU",
            Status.FAIL,
            f"TensorFlow does not start: {last[:200]}",
            "reinstall Atelier's dependencies (`pip install -e .`)",
        )
    gpus = [g for g in done.stdout.strip().split("|") if g]
    if not gpus:
        return Check(
            "GPU",
            Status.WARN,
            "TensorFlow sees no GPU: style transfer runs on the CPU (minutes per image)",
            "on a GPU machine: install the NVIDIA driver and `pip install tensorflow[and-cuda]`,"
            " and check `nvidia-smi` and CUDA_VISIBLE_DEVICES",
        )
    return Check("GPU", Status.OK, f"TensorFlow sees {', '.join(gpus)}")


def check_disk(settings: Settings) -> Check:
    """FAIL under ATELIER_MIN_FREE_DISK_MB free in storage (jobs would be held, uploads refused
    with 507), a warning under `LOW_DISK`."""
    space = free_space(settings)
    detail = f"{space.free / 1024**3:.1f} GiB free in {space.folder}"
    fix = "free some space, or set ATELIER_RETENTION_DAYS so old files are removed"
    if space.low:
        return Check("disk", Status.FAIL, f"{detail}, under ATELIER_MIN_FREE_DISK_MB", fix)
    if space.free < LOW_DISK:
        return Check("disk", Status.WARN, detail, fix)
    return Check("disk", Status.OK, detail)


CHECKS: tuple[Callable[[Settings], Check], ...] = (
    check_database,
    check_broker,
    check_queues,
    check_storage,
    check_weights,
    check_face_model,
    check_ffmpeg,
    check_disk,
)
MARK = {Status.OK: "[green]ok  [/]", Status.WARN: "[yellow]warn[/]", Status.FAIL: "[red]FAIL[/]"}


def doctor_cmd(
    gpu: Annotated[
        bool, typer.Option("--gpu/--no-gpu", help="Start TensorFlow to see its GPUs (seconds).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Check the configuration: database, broker, queues and their workers, storage, weights,
    face model, ffmpeg, GPU, disk.

    Says what is missing and how to fix it; exits 1 when a check fails (warnings do not).
    """
    from api.cli.status import out

    try:
        settings = get_settings()
    except Exception as error:  # noqa: BLE001 - a bad setting is the first finding
        findings = [
            Check("settings", Status.FAIL, _first_line(error), "correct the ATELIER_* variable")
        ]
    else:
        findings = [check(settings) for check in (*CHECKS, *((check_gpu,) if gpu else ()))]
    if as_json:
        typer.echo(json.dumps([{**asdict(f), "status": f.status.value} for f in findings]))
    else:
        for finding in findings:
            line = f"{MARK[finding.status]} {finding.name}: {escape(finding.detail)}"
            out.print(line, highlight=False, soft_wrap=True)
            if finding.fix:
                out.print(f"     fix: {escape(finding.fix)}", highlight=False, soft_wrap=True)
    if any(f.status is Status.FAIL for f in findings):
        raise typer.Exit(1)
