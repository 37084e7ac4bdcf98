"""Every queue consumed, or said: the README's deployment recipe, started worker by worker.

With only the recipe's GPU worker (`nst`) up, `atelier doctor` fails and names the queues nobody
consumes with the command that starts a consumer, `atelier stylize --engine fast` says its jobs
wait, and the API's answer to a new batch carries the same warning. Once the recipe's CPU worker
is up too, the waiting fast-engine job runs, a video job runs, and doctor finds every service ok
(the test's stand-in weights file, not the ImageNet one, is only a warning).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from contextlib import ExitStack
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.http.app import create_app
from atelier.celery_app import QUEUES
from atelier.db import migrate
from atelier.settings import Settings
from tests.api.conftest import png_bytes, upload
from tests.faults.harness import cut_clip
from tests.support.procs import (
    ATELIER,
    REPO,
    atelier_env,
    atelier_process,
    stop_all,
    wait_for_log,
)

pytestmark = pytest.mark.slow


def recipe_workers() -> list[list[str]]:
    """The `atelier worker` lines of the README's "A deployment" recipe, as arguments."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("### A deployment", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = [line.split("#", 1)[0].strip() for line in section.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("atelier worker ")]


def test_the_readme_recipe_consumes_every_queue():
    taken = set()
    for args in recipe_workers():
        queues = args[args.index("--queues") + 1]
        taken.update(queues.split(","))
    assert taken == set(QUEUES)


def _doctor(env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*ATELIER, "doctor", "--json", *extra],
        env=atelier_env(env),
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def _findings(doctor: subprocess.Popen[str]) -> tuple[int, dict[str, dict]]:
    out, _ = doctor.communicate(timeout=300)
    return doctor.returncode, {f["name"]: f for f in json.loads(out)}


def test_a_queue_without_a_worker_is_said_and_the_recipe_runs_every_engine(
    tmp_path: Path, pg_url: str, redis_url: str, test_data: Path
):
    weights = tmp_path / "vgg19.h5"
    weights.write_bytes(b"\x89HDF\r\n\x1a\n")
    env = {
        "ATELIER_DATABASE_URL": pg_url,
        "ATELIER_BROKER_URL": redis_url,
        "ATELIER_DATA_DIR": str(tmp_path / "data"),
        "ATELIER_VGG_WEIGHTS": str(weights),
        "ATELIER_HEARTBEAT_SECONDS": "0.5",
    }
    photo, painting = tmp_path / "photo.png", tmp_path / "painting.png"
    Image.new("RGB", (32, 24), (200, 120, 40)).save(photo)
    Image.new("RGB", (32, 32), (30, 60, 200)).save(painting)
    migrate(pg_url)  # the recipe's `atelier migrate`
    clip = cut_clip(test_data / "video" / "chaplin.mp4", tmp_path / "c.mp4", 5, 0.5)
    gpu_worker, cpu_worker = recipe_workers()
    with ExitStack() as stack:
        gpu = stack.enter_context(atelier_process(gpu_worker, env, tmp_path / "gpu.log", " ready."))
        code, found = _findings(_doctor(env, "--no-gpu"))
        assert code == 1, found
        queues = found["queues"]
        assert queues["status"] == "FAIL", queues
        assert re.search(r"nst: nst@\S+", queues["detail"]), queues
        for idle in ("fast", "video", "default"):
            assert f"{idle}: NO WORKER" in queues["detail"], queues
            assert f"atelier worker --queues {idle}" in queues["fix"], queues
        # The CLI: the fast job's queue has no worker, and the command says so while it waits.
        log = tmp_path / "stylize.log"
        args = ["stylize", str(photo), "-s", str(painting), "--engine", "fast", "--size", "32"]
        with log.open("ab") as out:
            cli = subprocess.Popen(
                [*ATELIER, *args, "--out", str(tmp_path / "out")],
                env=atelier_env(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        try:
            wait_for_log(log, "no worker consumes queue `fast`", 60, cli)
            assert "atelier worker --queues fast" in log.read_text()
            # The API: the same warning in its answer to a new batch.
            settings = Settings(**{k[8:].lower(): v for k, v in env.items()})
            with TestClient(create_app(settings)) as client:
                content = upload(client, png_bytes(32, 24, (10, 200, 10)))["sha256"]
                style = upload(client, png_bytes(32, 32, (200, 10, 10)))["sha256"]
                body = {"content": [content], "styles": [style], "params": {"engine": "fast"}}
                made = client.post("/v1/batches", json=body)
            assert made.status_code == 201, made.text
            assert any("queue `fast`" in w for w in made.json()["warnings"]), made.json()
            # The recipe's CPU worker: the waiting job runs, and so does a video.
            cpu = stack.enter_context(
                atelier_process(cpu_worker, env, tmp_path / "cpu.log", " ready.")
            )
            stack.callback(stop_all, [gpu, cpu])  # a worker takes seconds to stop: both at once
            doctor = _doctor(env)  # with the GPU check: it starts TensorFlow meanwhile
            assert cli.wait(120) == 0, log.read_text()
            video = subprocess.run(
                [*ATELIER, "video", str(clip), "--out", str(tmp_path / "v.mp4")],
                env=atelier_env(env),
                capture_output=True,
                text=True,
                cwd=REPO,
                timeout=300,
            )
            assert video.returncode == 0, video.stdout + video.stderr
            code, found = _findings(doctor)
        finally:
            if cli.poll() is None:
                cli.kill()
    assert (tmp_path / "out" / "photo__painting.png").is_file()
    assert code == 0, found
    assert set(found) == {
        "database", "broker", "queues", "storage", "VGG19 weights", "face model", "ffmpeg",
        "disk", "GPU",
    }  # fmt: skip
    for name in ("database", "broker", "queues", "storage", "face model"):
        assert found[name]["status"] == "ok", found[name]
    # A stand-in file, not Keras' ImageNet file: doctor says so, and it is only a warning.
    assert found["VGG19 weights"]["status"] == "warn", found["VGG19 weights"]
    assert "not Keras' ImageNet file" in found["VGG19 weights"]["detail"]
    for queue in QUEUES:
        assert re.search(rf"{queue}: [^;]*@", found["queues"]["detail"]), found["queues"]
    assert redis_url.split("//")[1] in found["broker"]["detail"]
    assert str(weights) in found["VGG19 weights"]["detail"]
    assert found["GPU"]["status"] in ("ok", "warn"), found["GPU"]
    assert "TensorFlow sees" in found["GPU"]["detail"]
    assert "GiB free in" in found["disk"]["detail"]
