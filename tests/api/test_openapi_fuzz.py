"""Schemathesis over the OpenAPI document: generated requests never get a 5xx, and no request
the API accepts asks for more work than a stated budget.

The database is seeded with a real image, a video and a few jobs so that path ids and bodies can
hit existing rows, not only 404s; generated batches and videos are pointed at the seeded assets,
so many of them are accepted. Valid (positive) and invalid (negative) requests are both
generated, a bounded number per operation, so the run stays well under a minute.

The budget: every input that multiplies work is bounded in the schema (every list has
`maxItems`, checked below), so the largest job the schema allows is known, and a request makes at
most ATELIER_MAX_GRID of them. Its work is measured with the time-limit formula of
`atelier.limits`, which counts size, steps, scales, layers, tiles and styles.
"""

from __future__ import annotations

from collections import Counter

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.openapi import from_asgi

from api.http.app import create_app
from atelier.db import session_scope
from atelier.limits import VIDEO_FPS_BOUND, message_seconds, nst_seconds, video_seconds
from atelier.models import Batch, Job, LossRecord
from atelier.schemas import (
    MAX_BLEND_STYLES,
    MAX_BOARD_FILTERS,
    MAX_STYLE_LAYERS,
    VGG19_CONV_LAYERS,
    NSTParams,
)
from tests.api.conftest import png_bytes

EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}
MAX_GRID = 8  # a small grid limit keeps accepted batches quick to write
LARGEST_JOB = max(
    nst_seconds(
        NSTParams(
            size=4096,
            iterations=20000,
            scales=5,
            style_scale=4,
            content_layer="block5_conv4",  # the network run to its end
            style_layers=(layer,) * MAX_STYLE_LAYERS,  # the dearest Gram matrix, every time
        ),
        1,
        styles=MAX_BLEND_STYLES,
        memory_mb=1,  # tiled
    )
    for layer in VGG19_CONV_LAYERS
)
"""The most work one NST job may ask for: every bound of `NSTParams` at its largest."""


def seed(config, test_data) -> tuple[str, str]:
    """Assets and jobs for the generated requests to find; returns the image's and the
    video's sha256."""
    with TestClient(create_app(config)) as client:
        image = client.post("/v1/assets", content=png_bytes()).json()["sha256"]
        clip = (test_data / "video" / "chaplin.mp4").read_bytes()
        video = client.post("/v1/assets", content=clip).json()["sha256"]
    with session_scope(config.resolved_database_url) as session:
        batch = Batch(kind="nst", source="test", params={})
        session.add(batch)
        session.flush()
        for state in ("queued", "succeeded", "failed"):
            job = Job(
                kind="nst",
                batch_id=batch.id,
                state=state,
                inputs={"content": image, "styles": [image]},
                params={},
                meta={},
            )
            session.add(job)
            session.flush()
            session.add(LossRecord(job_id=job.id, iteration=1, total=1, content=1, style=1, tv=1))
    return image, video


def _on_seeded_assets(case, image: str, video: str) -> None:
    """Point a generated batch or video at the seeded assets, so it can be accepted."""
    body = case.body if isinstance(case.body, dict) else None
    if body is None or case.method != "POST":
        return
    if case.path == "/v1/batches":
        for key in ("content", "styles"):
            if isinstance(body.get(key), list):
                body[key] = [image] * len(body[key])
    elif case.path == "/v1/videos":
        body["video"] = video
        if isinstance(body.get("params"), dict) and "style" in body["params"]:
            body["params"]["style"] = image


def _work_of_batch(config, batch_id: int) -> float:
    """The work the batch's jobs ask for: each job's time-limit bound, as if sent alone."""
    with session_scope(config.resolved_database_url) as session:
        jobs = list(session.query(Job).filter(Job.batch_id == batch_id))
        return sum(message_seconds(session, [job]) or 0.0 for job in jobs)


def _request_schemas(spec: dict) -> list[tuple[str, dict]]:
    """(where, schema) of every parameter and request body of the document."""
    found = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            for parameter in operation.get("parameters", []):
                found.append((f"{method} {path} {parameter['name']}", parameter["schema"]))
            for kind, content in operation.get("requestBody", {}).get("content", {}).items():
                found.append((f"{method} {path} body {kind}", content["schema"]))
    return found


def _unbounded_lists(spec: dict, where: str, node: object, seen: frozenset[str]) -> list[str]:
    if isinstance(node, list):
        return [u for item in node for u in _unbounded_lists(spec, where, item, seen)]
    if not isinstance(node, dict):
        return []
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return []
        return _unbounded_lists(spec, f"{where} {name}", spec["components"]["schemas"][name],
                                seen | {name})  # fmt: skip
    found = [where] if node.get("type") == "array" and "maxItems" not in node else []
    for key, value in node.items():
        found += _unbounded_lists(spec, f"{where}.{key}", value, seen)
    return found


def test_every_list_a_request_may_send_is_bounded(client):
    spec = client.get("/openapi.json").json()
    inputs = _request_schemas(spec)
    assert any("post /v1/batches body" in where for where, _ in inputs)
    unbounded = [
        u for where, schema in inputs for u in _unbounded_lists(spec, where, schema, frozenset())
    ]
    assert not unbounded, unbounded
    # The case: 5,000 style layers at 48 px, refused at the door.
    body = {"content": ["0" * 64], "styles": ["0" * 64],
            "params": {"size": 48, "style_layers": ["block1_conv1"] * 5000}}  # fmt: skip
    refused = client.post("/v1/batches", json=body)
    assert refused.status_code == 422 and "params.style_layers" in refused.text


def test_no_operation_answers_with_a_server_error_or_accepts_work_over_budget(
    api_settings, test_data
):
    config = api_settings.model_copy(update={"max_grid": MAX_GRID})
    image, video = seed(config, test_data)
    budget = {
        "/v1/batches": MAX_GRID * LARGEST_JOB,
        "/v1/videos": video_seconds(
            round(config.max_video_seconds * VIDEO_FPS_BOUND) + 1,
            config.max_video_pixels,  # width x height at most this, whatever the shape
            1,
            MAX_BOARD_FILTERS + 1,  # the largest board's panels
        ),
    }
    over_budget: list[str] = []
    accepted: Counter[str] = Counter()
    schema = from_asgi("/openapi.json", create_app(config))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    unsatisfiable: list[str] = []
    for operation in operations:
        for mode, examples in EXAMPLES.items():

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case) -> None:
                _on_seeded_assets(case, image, video)
                response = case.call()
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path}: {response.text[:200]}")
                case.validate_response(response, checks=[not_a_server_error])
                if case.method == "POST" and response.status_code == 201 and case.path in budget:
                    accepted[case.path] += 1
                    work = _work_of_batch(config, response.json()["id"])
                    if work > budget[case.path]:
                        over_budget.append(f"{case.path} {case.body}: {work:.0f} s")

            try:
                fuzz()
            except Unsatisfiable:
                # An operation with no parameters has no invalid request to generate.
                assert mode is GenerationMode.NEGATIVE, operation.label
                unsatisfiable.append(operation.label)
    assert not failures, failures
    assert not over_budget, over_budget
    assert accepted["/v1/batches"] > 0 and accepted["/v1/videos"] > 0, accepted
    assert len(unsatisfiable) < len(operations) // 2, unsatisfiable
    assert statuses[200] + statuses[201] > 0 and statuses[404] > 0 and statuses[422] > 0, statuses
