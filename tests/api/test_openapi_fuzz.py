"""Schemathesis over the OpenAPI document: generated requests never get a 5xx.

The database is seeded with a real image, a video and a few jobs so that path ids and bodies can
hit existing rows, not only 404s. Valid (positive) and invalid (negative) requests are both
generated, a bounded number per operation, so the run stays well under a minute.
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
from atelier.models import Batch, Job, LossRecord
from tests.api.conftest import png_bytes

EXAMPLES = {GenerationMode.POSITIVE: 12, GenerationMode.NEGATIVE: 6}


def seed(settings, test_data) -> None:
    with TestClient(create_app(settings)) as client:
        image = client.post("/v1/assets", content=png_bytes()).json()["sha256"]
        client.post("/v1/assets", content=(test_data / "video" / "chaplin.mp4").read_bytes())
    with session_scope(settings.resolved_database_url) as session:
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


def test_no_operation_answers_with_a_server_error(api_settings, test_data):
    seed(api_settings, test_data)
    schema = from_asgi("/openapi.json", create_app(api_settings))
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
                response = case.call()
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    failures.append(f"{case.method} {case.formatted_path}: {response.text[:200]}")
                case.validate_response(response, checks=[not_a_server_error])

            try:
                fuzz()
            except Unsatisfiable:
                # An operation with no parameters has no invalid request to generate.
                assert mode is GenerationMode.NEGATIVE, operation.label
                unsatisfiable.append(operation.label)
    assert not failures, failures
    assert len(unsatisfiable) < len(operations) // 2, unsatisfiable
    assert statuses[200] + statuses[201] > 0 and statuses[404] > 0 and statuses[422] > 0, statuses
