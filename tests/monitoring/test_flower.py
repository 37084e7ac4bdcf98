"""Flower on a real broker: it sees a real worker, its tasks by name and a running job's progress,
and it answers nobody without the password."""

from __future__ import annotations

import shlex
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from PIL import Image

from atelier.batches import create_nst_batch, ingest_image, send_plan
from atelier.celery_app import NST_STYLIZE, PING, create_app
from atelier.db import migrate, session_scope
from atelier.jobs import cancel
from atelier.models import JobState
from atelier.schemas import NSTParams
from atelier.settings import Settings
from atelier.storage import Storage
from atelier.submit import create_ping_job, job_states, send_jobs, wait_for_jobs
from tests.support.procs import ATELIER, REPO, atelier_env, atelier_process

USER, PASSWORD = "ops", "flower-test-password"
NST_TASK = REPO / "workers" / "tasks" / "nst.py"
ITERATIONS = 2000  # a tiny image, many steps: seconds of running to watch


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _eventually(what: str, probe: Callable[[], Any], timeout: float = 90) -> Any:
    """Poll `probe` until it returns something truthy; fail with `what` and its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s; last seen: {last!r}")


def _image(path: Path, seed: int) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ATELIER, *args],
        env=atelier_env(env),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_flower_needs_a_password_or_an_explicit_no_auth(tmp_path: Path):
    env = {"ATELIER_BROKER_URL": "redis://127.0.0.1:1/0", "ATELIER_DATA_DIR": str(tmp_path)}
    refused = _run(["flower"], env)
    assert refused.returncode == 2
    assert "ATELIER_FLOWER_PASSWORD is not set" in refused.stderr
    assert "--no-auth" in refused.stderr


def test_flower_refuses_the_embedded_default(tmp_path: Path):
    env = {"ATELIER_DATA_DIR": str(tmp_path), "ATELIER_FLOWER_PASSWORD": PASSWORD}
    refused = _run(["flower"], env)
    assert refused.returncode == 2
    assert "ATELIER_BROKER_URL" in refused.stderr


@pytest.mark.parametrize("blank", [" ", "\t  "])
def test_flower_refuses_a_blank_password(tmp_path: Path, blank: str):
    env = {
        "ATELIER_BROKER_URL": "redis://127.0.0.1:1/0",
        "ATELIER_DATA_DIR": str(tmp_path),
        "ATELIER_FLOWER_PASSWORD": blank,
    }
    refused = _run(["flower"], env)
    assert refused.returncode == 2
    assert "ATELIER_FLOWER_PASSWORD is not set (or blank)" in refused.stderr


def _listening_addresses(port: int) -> set[str]:
    """The local addresses of sockets listening on `port`, from /proc/net/tcp (Linux)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.slow
def test_flower_listens_on_loopback_only_by_default(tmp_path: Path, redis_url: str):
    """Flower 2.2 answers /metrics without the password: by default nobody else can reach it."""
    env = {
        "ATELIER_BROKER_URL": redis_url,
        "ATELIER_DATA_DIR": str(tmp_path / "data"),
        "ATELIER_FLOWER_PASSWORD": PASSWORD,
    }
    port = _free_port()
    flower = ["flower", "--port", str(port), "--no-persistent"]
    with atelier_process(flower, env, tmp_path / "flower.log", ready="Visit me at"):
        _eventually("Flower answering", lambda: _ok(f"http://127.0.0.1:{port}/healthcheck"))
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
        assert httpx.get(f"http://127.0.0.1:{port}/api/workers", timeout=10).status_code == 401


@pytest.mark.slow
def test_flower_in_compose_listens_where_its_published_port_reaches(tmp_path: Path, redis_url: str):
    """A published port reaches a container through its network interface, not its loopback:
    the compose command must listen on every interface of the container (the host publishes
    the port on its own 127.0.0.1, see tests/deploy)."""
    service = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["flower"]
    command = shlex.split(service["command"])
    assert command[:2] == ["atelier", "flower"]
    port = _free_port()
    command[command.index("--port") + 1] = str(port)
    env = {
        "ATELIER_BROKER_URL": redis_url,
        "ATELIER_DATA_DIR": str(tmp_path / "data"),
        "ATELIER_FLOWER_PASSWORD": PASSWORD,
    }
    with atelier_process(command[1:], env, tmp_path / "flower.log", ready="Visit me at"):
        _eventually("Flower answering", lambda: _ok(f"http://127.0.0.1:{port}/healthcheck"))
        assert _listening_addresses(port) == {"00000000"}  # 0.0.0.0: every interface
        assert httpx.get(f"http://127.0.0.1:{port}/api/workers", timeout=10).status_code == 401


def test_flower_refuses_no_auth_beyond_loopback(tmp_path: Path):
    env = {"ATELIER_BROKER_URL": "redis://127.0.0.1:1/0", "ATELIER_DATA_DIR": str(tmp_path)}
    refused = _run(["flower", "--no-auth", "--address", "0.0.0.0"], env)
    assert refused.returncode == 2
    assert "--no-auth is for a look from this machine only" in refused.stderr


def test_flower_refuses_credentials_it_would_misread(tmp_path: Path):
    env = {
        "ATELIER_BROKER_URL": "redis://127.0.0.1:1/0",
        "ATELIER_DATA_DIR": str(tmp_path),
        "ATELIER_FLOWER_PASSWORD": "a,b",
    }
    refused = _run(["flower"], env)
    assert refused.returncode == 2
    assert "','" in refused.stderr


@pytest.mark.slow
def test_flower_sees_the_worker_its_tasks_and_a_running_jobs_progress(
    tmp_path: Path, pg_url: str, redis_url: str
):
    data = tmp_path / "data"
    env = {
        "ATELIER_DATABASE_URL": pg_url,
        "ATELIER_BROKER_URL": redis_url,
        "ATELIER_DATA_DIR": str(data),
        "ATELIER_VGG_WEIGHTS": "none",
        "ATELIER_HEARTBEAT_SECONDS": "0.5",
        "ATELIER_FLOWER_USER": USER,
        "ATELIER_FLOWER_PASSWORD": PASSWORD,
    }
    # Producers pin the weights in each job: the same random weights as the worker.
    settings = Settings(
        database_url=pg_url, broker_url=redis_url, data_dir=data, vgg_weights="none"
    )
    migrate(pg_url)
    app = create_app(settings)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    flower = ["flower", "--port", str(port), "--address", "127.0.0.1"]
    worker = ["worker", "--queues", "default,nst", "--hostname", "mon@%h"]
    node = f"mon@{socket.gethostname()}"

    # Flower lists only the tasks it has seen since it started: it starts first.
    with (
        atelier_process(flower, env, tmp_path / "flower.log", ready="Visit me at"),
        httpx.Client(base_url=base, auth=(USER, PASSWORD), timeout=10) as api,
    ):
        _eventually("Flower answering", lambda: _ok(base + "/healthcheck"))
        assert httpx.get(base + "/api/workers", timeout=10).status_code == 401
        wrong = httpx.get(base + "/api/workers", auth=(USER, "wrong"), timeout=10)
        assert wrong.status_code == 401
        assert api.get("/api/workers").status_code == 200

        with atelier_process(worker, env, tmp_path / "worker.log", ready=" ready."):
            workers = _eventually(
                "the worker in /api/workers",
                lambda: (
                    node in (found := api.get("/api/workers", params={"refresh": 1}).json())
                    and found
                ),
            )
            assert {q["name"] for q in workers[node]["active_queues"]} == {"default", "nst"}
            assert PING in workers[node]["registered"]

            job_id = create_ping_job(pg_url)
            task_id = send_jobs(app, pg_url, PING, [job_id])
            assert wait_for_jobs(pg_url, [job_id], timeout=60)[job_id].state == JobState.SUCCEEDED
            info = _eventually(
                "the ping task's success in /api/task/info",
                lambda: (
                    (i := api.get(f"/api/task/info/{task_id}")).status_code == 200
                    and i.json()["state"] == "SUCCESS"
                    and i.json()
                ),
            )
            assert info["name"] == PING
            assert info["worker"] == node
            assert info["args"] == f"[[{job_id}]]"
            # The task's result names the attempt it ran (the job's first).
            assert f"'attempts': {{'{job_id}': 1}}" in info["result"], info["result"]
            listed = api.get("/api/tasks", params={"taskname": PING}).json()
            assert listed[task_id]["name"] == PING and listed[task_id]["state"] == "SUCCESS"

            _check_progress(api, settings, app, tmp_path)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _check_progress(api: httpx.Client, settings: Settings, app: Any, tmp_path: Path) -> None:
    """A tiny NST job that runs long enough to be seen running, with its PROGRESS meta."""
    if not NST_TASK.exists():
        pytest.fail(f"{NST_TASK} is missing: the NST task is needed for a running job")
    with session_scope(settings.resolved_database_url) as session:
        content = ingest_image(session, settings, _image(tmp_path / "content.png", 1)).sha256
        style = ingest_image(session, settings, _image(tmp_path / "style.png", 2)).sha256
    params = NSTParams(size=32, iterations=ITERATIONS, preview_every=0)
    plan = create_nst_batch(settings, [content], [style], params)
    send_plan(app, settings, plan)
    (job_id,) = plan.job_ids
    task_id = job_states(settings.resolved_database_url, [job_id])[job_id].celery_task_id

    # Flower follows the task through its events: a running job shows as PROGRESS, with its meta
    # (first the start-up stages, then the iterations).
    info = _eventually(
        "the NST task's PROGRESS state in /api/task/info",
        lambda: (
            (i := api.get(f"/api/task/info/{task_id}")).status_code == 200
            and i.json()["state"] == "PROGRESS"
            and "iteration" in (i.json()["result"] or {})
            and i.json()
        ),
        timeout=180,
    )
    assert info["name"] == NST_STYLIZE
    _assert_progress_meta(info["result"], job_id)
    # The result backend, read through Flower, holds the same state (its meta only once ready).
    assert api.get(f"/api/task/result/{task_id}").json()["state"] == "PROGRESS"
    listed = api.get("/api/tasks", params={"taskname": NST_STYLIZE}).json()
    assert listed[task_id]["name"] == NST_STYLIZE

    assert cancel(settings.resolved_database_url, job_id)  # the next heartbeat stops it
    # The monitor tells the truth: a cancelled job's task ends CANCELLED, not SUCCESS.
    _eventually(
        "the cancelled task to end as CANCELLED",
        lambda: api.get(f"/api/task/info/{task_id}").json()["state"] == "CANCELLED",
        timeout=60,
    )
    assert api.get(f"/api/task/result/{task_id}").json()["state"] == "CANCELLED"

    # A job cancelled while it waits in the queue: its task ends CANCELLED too.
    plan = create_nst_batch(settings, [content], [style], NSTParams(size=32, iterations=3))
    (job_id,) = plan.job_ids
    assert cancel(settings.resolved_database_url, job_id)
    send_plan(app, settings, plan)
    task_id = job_states(settings.resolved_database_url, [job_id])[job_id].celery_task_id
    _eventually(
        "the task of a job cancelled in the queue to end as CANCELLED",
        lambda: api.get(f"/api/task/info/{task_id}").json().get("state") == "CANCELLED",
        timeout=60,
    )

    # A job that fails on its input: FAILURE, with the job's message.
    with session_scope(settings.resolved_database_url) as session:
        content = ingest_image(session, settings, _image(tmp_path / "gone.png", 3)).sha256
    plan = create_nst_batch(settings, [content], [style], NSTParams(size=32, iterations=2))
    Storage(settings.resolved_storage_dir).path(content).unlink()  # the stored input is lost
    send_plan(app, settings, plan)
    (job_id,) = plan.job_ids
    task_id = job_states(settings.resolved_database_url, [job_id])[job_id].celery_task_id
    info = _eventually(
        "the failed job's task as FAILURE",
        lambda: (
            (i := api.get(f"/api/task/info/{task_id}")).status_code == 200
            and i.json()["state"] == "FAILURE"
            and i.json()
        ),
        timeout=60,
    )
    assert f"job {job_id}: input file is missing" in info["exception"]
    assert job_states(settings.resolved_database_url, [job_id])[job_id].state == JobState.FAILED


def _assert_progress_meta(meta: dict[str, Any], job_id: int) -> None:
    assert meta["job_id"] == job_id and meta["attempt"] == 1
    assert meta["of"] == ITERATIONS and 1 <= meta["iteration"] <= ITERATIONS
    assert 0 < meta["progress"] <= 1
    assert set(meta["losses"]) >= {"total", "content", "style", "tv"}
