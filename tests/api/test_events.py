"""`GET /v1/batches/{id}/events`: the batch pushed to the gallery as server-sent events whenever
one of its jobs changes (the polling fallback is set to an hour here, so only notices can drive
it), ending once the batch is finished."""

from __future__ import annotations

import json
import threading

import pytest

from api.http import events
from atelier import jobs
from tests.api.test_resources import make_jobs

DEADLINE = 60  # bounds a broken stream; not a timing


def test_a_batch_streams_each_change_until_it_is_finished(
    client, api_settings, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(events, "FALLBACK_SECONDS", 3600.0)
    db = api_settings.resolved_database_url
    first, second = make_jobs(db, ["queued", "queued"])
    batch_id = client.get(f"/v1/jobs/{first}").json()["batch_id"]
    received: list[dict] = []
    got_first = threading.Event()

    def read() -> None:
        with client.stream("GET", f"/v1/batches/{batch_id}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    received.append(json.loads(line[6:]))
                    got_first.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert got_first.wait(DEADLINE)
    for job_id in (first, second):
        lease = jobs.claim(db, job_id, "test:1", lease_seconds=60).lease
        assert lease is not None
        jobs.succeed(lease, None, {}, 0.1)
    reader.join(DEADLINE)
    assert not reader.is_alive(), f"the stream did not follow the jobs: {received}"
    assert received[0]["counts"] == {"queued": 2}
    assert received[-1]["finished"] and received[-1]["counts"] == {"succeeded": 2}


def test_events_of_a_missing_batch_are_404(client):
    response = client.get("/v1/batches/999999/events")
    assert response.status_code == 404 and "no batch" in response.json()["error"]
