"""`GET /v1/batches/{id}/events`: the batch pushed to the gallery as server-sent events whenever
one of its jobs changes (the polling fallback is set to an hour here, so only notices can drive
it), ending once the batch is finished."""

from __future__ import annotations

import json
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from api.http import events
from api.http.app import create_app
from atelier import jobs
from atelier.db import get_engine
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


def _follow(client, batch_id: int, got_first: threading.Event, seen: list[dict]) -> None:
    with client.stream("GET", f"/v1/batches/{batch_id}/events") as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
                got_first.set()


def test_streams_share_one_read_per_change(client, api_settings, monkeypatch: pytest.MonkeyPatch):
    """However many streams follow a batch, each change costs the process one read of it."""
    monkeypatch.setattr(events, "FALLBACK_SECONDS", 3600.0)
    monkeypatch.setattr(events, "COALESCE_SECONDS", 0.1)
    db = api_settings.resolved_database_url
    first, second = make_jobs(db, ["queued", "queued"])
    batch_id = client.get(f"/v1/jobs/{first}").json()["batch_id"]
    streams = 12
    seen: list[list[dict]] = [[] for _ in range(streams)]
    started = [threading.Event() for _ in range(streams)]
    readers = [
        threading.Thread(target=_follow, args=(client, batch_id, started[i], seen[i]), daemon=True)
        for i in range(streams)
    ]
    for reader in readers:
        reader.start()
    assert all(event.wait(DEADLINE) for event in started)
    reads: list[str] = []

    def count(_conn, _cursor, statement: str, *_args) -> None:
        if "FROM batches" in statement:
            reads.append(statement)

    event.listen(get_engine(db), "before_cursor_execute", count)
    try:
        changes = 0
        for job_id in (first, second):
            lease = jobs.claim(db, job_id, "test:1", lease_seconds=60).lease
            assert lease is not None
            time.sleep(4 * events.COALESCE_SECONDS)  # each change read on its own
            jobs.succeed(lease, None, {}, 0.1)
            time.sleep(4 * events.COALESCE_SECONDS)
            changes += 2
        for reader in readers:
            reader.join(DEADLINE)
    finally:
        event.remove(get_engine(db), "before_cursor_execute", count)
    assert not any(reader.is_alive() for reader in readers), [len(s) for s in seen]
    assert all(s[-1]["finished"] and s[-1]["counts"] == {"succeeded": 2} for s in seen)
    assert len(reads) <= changes + 1, len(reads)  # not one per stream: 12 streams, 4 changes


def test_streams_are_capped_per_client(api_settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(events, "FALLBACK_SECONDS", 0.5)
    settings = api_settings.model_copy(update={"max_streams_per_client": 2})
    (job_id,) = make_jobs(settings.resolved_database_url, ["queued"])
    with TestClient(create_app(settings)) as client:
        batch_id = client.get(f"/v1/jobs/{job_id}").json()["batch_id"]
        path = f"/v1/batches/{batch_id}/events"
        with client.stream("GET", path) as one, client.stream("GET", path) as two:
            assert one.status_code == two.status_code == 200
            with client.stream("GET", path) as refused:  # a stream: a 200 would never end
                assert refused.status_code == 429
                assert "ATELIER_MAX_STREAMS_PER_CLIENT" in refused.read().decode()
                assert int(refused.headers["retry-after"]) > 0
            other = TestClient(client.app, client=("192.0.2.9", 1))
            with other.stream("GET", path) as theirs:  # another address has streams of its own
                assert theirs.status_code == 200
        # Closed streams are given back once the server notices (at their next keep-alive).
        deadline = time.monotonic() + DEADLINE
        while _status(client, path) == 429 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _status(client, path) == 200


def _status(client: TestClient, path: str) -> int:
    with client.stream("GET", path) as response:
        return response.status_code
