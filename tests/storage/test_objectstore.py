"""Object storage against a real S3 gateway (SeaweedFS): objects by content in the bucket, a
bounded local cache, work files between workers, outages told from answers, retention, and the
API's downloads streamed or redirected."""

from __future__ import annotations

import io
import logging
import os
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from atelier.assets import record_asset
from atelier.db import migrate, session_scope
from atelier.objectstore import ObjectStorage, s3_client
from atelier.settings import Settings
from atelier.storage import open_storage
from atelier.storage_errors import is_transient_storage_error
from scheduler.retention import purge_expired
from tests.api.conftest import png_bytes, upload
from tests.support.seaweed import BUCKET, SeaweedServer, free_ports

KB3 = 3000


def _storage(env: dict[str, str], root: Path, cache_bytes: int = 10**9) -> ObjectStorage:
    return ObjectStorage(env["ATELIER_STORAGE_URL"], root, cache_bytes, 5.0, cache_grace=0)


def _keys(storage: ObjectStorage, under: str) -> list[str]:
    listed = s3_client().list_objects_v2(Bucket=BUCKET, Prefix=storage.location.prefix + under)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_objects_are_stored_once_by_content_and_read_from_another_host(
    s3_env: dict[str, str], tmp_path: Path
):
    settings = Settings(data_dir=tmp_path / "a")
    storage = open_storage(settings)
    assert isinstance(storage, ObjectStorage)
    first = storage.put_bytes(b"painting")
    second = storage.put_stream(io.BytesIO(b"painting"))
    assert first.sha256 == second.sha256
    assert _keys(storage, "objects/") == [storage.key(first.sha256)]
    other = _storage(s3_env, tmp_path / "b")  # another machine: a cache of its own, empty
    assert not other.path(first.sha256).exists()
    assert other.exists(first.sha256)
    assert other.local_path(first.sha256).read_bytes() == b"painting"


def test_a_damaged_object_is_refused(s3_env: dict[str, str], tmp_path: Path):
    storage = _storage(s3_env, tmp_path / "a")
    sha = storage.put_bytes(b"the real bytes").sha256
    s3_client().put_object(Bucket=BUCKET, Key=storage.key(sha), Body=b"other bytes")
    reader = _storage(s3_env, tmp_path / "b")
    with pytest.raises(OSError, match="arrived damaged"):
        reader.local_path(sha)
    assert not reader.path(sha).exists()


def test_the_cache_keeps_the_most_recently_used_copies_within_its_bound(
    s3_env: dict[str, str], tmp_path: Path
):
    storage = _storage(s3_env, tmp_path / "cache", cache_bytes=3 * KB3 + 500)
    now = time.time()
    shas = []
    for i in range(5):
        shas.append(storage.put_bytes(bytes([i]) * KB3).sha256)
        os.utime(storage.path(shas[-1]), (now - 100 + i, now - 100 + i))  # used in this order
    assert storage.cached_bytes() <= 3 * KB3 + 500
    assert [storage.path(sha).exists() for sha in shas] == [False, False, True, True, True]
    assert all(storage.exists(sha) for sha in shas)  # the bucket keeps every one
    # Reading the oldest brings it back; the least recently used copy makes room.
    assert storage.local_path(shas[0]).read_bytes() == bytes([0]) * KB3
    assert [storage.path(sha).exists() for sha in shas] == [True, False, False, True, True]


def test_recently_used_copies_are_spared(s3_env: dict[str, str], tmp_path: Path):
    """Another process of the host may be about to open a copy it was just given."""
    storage = ObjectStorage(s3_env["ATELIER_STORAGE_URL"], tmp_path, KB3, 5.0, cache_grace=60)
    shas = [storage.put_bytes(bytes([i]) * KB3).sha256 for i in range(3)]
    assert all(storage.path(sha).exists() for sha in shas)


def test_work_files_pass_between_hosts_and_are_dropped(s3_env: dict[str, str], tmp_path: Path):
    here, there = _storage(s3_env, tmp_path / "a"), _storage(s3_env, tmp_path / "b")
    produced = tmp_path / "segment.mp4"
    produced.write_bytes(b"segment bytes")
    here.put_work("segments-7-1/segment-0000.mp4", produced)
    assert not produced.exists()
    got = there.get_work("segments-7-1/segment-0000.mp4", tmp_path / "got.mp4")
    assert got.read_bytes() == b"segment bytes"
    there.drop_work("segments-7-1")
    assert _keys(here, "work/") == []
    with pytest.raises(FileNotFoundError):
        here.get_work("segments-7-1/segment-0000.mp4", tmp_path / "again.mp4")
    with pytest.raises(ValueError, match="not a work file key"):
        here.put_work("../escape", produced)


def test_an_absent_store_is_retried_as_transient_and_a_missing_object_is_not(
    s3_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    storage = _storage(s3_env, tmp_path / "a")
    missing = "0" * 64
    with pytest.raises(FileNotFoundError) as refused:
        storage.local_path(missing)
    assert not is_transient_storage_error(refused.value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_ports(1)[0]}")  # nobody
    away = ObjectStorage(s3_env["ATELIER_STORAGE_URL"], tmp_path / "b", 10**6, 6.0)
    with caplog.at_level(logging.WARNING, "atelier.objectstore"), pytest.raises(Exception) as err:
        away.exists(missing)
    assert is_transient_storage_error(err.value), err.value
    retries = [r for r in caplog.records if "object store unavailable" in r.getMessage()]
    # It kept trying for its retry budget (6 s: a first try on a busy machine can take seconds).
    assert len(retries) >= 2, caplog.text


def test_retention_deletes_objects_from_the_bucket(
    s3_env: dict[str, str], tmp_path: Path, sqlite_url: str
):
    settings = Settings(data_dir=tmp_path / "data", database_url=sqlite_url)
    migrate(sqlite_url)
    storage = open_storage(settings)
    old, kept = storage.put_bytes(b"old result"), storage.put_bytes(b"new result")
    with session_scope(sqlite_url) as session:
        for stored, age in ((old, timedelta(days=3)), (kept, timedelta(0))):
            asset = record_asset(session, stored, kind="result", media_type="image/png")
            asset.created_at = asset.created_at - age
    stale = tmp_path / "left.mp4"
    stale.write_bytes(b"a killed attempt's segment")
    storage.put_work("segments-9-1/segment-0000.mp4", stale)
    report = purge_expired(settings, older_than=timedelta(days=1))
    assert report.removed == [old.sha256]
    assert not storage.exists(old.sha256) and not storage.path(old.sha256).exists()
    assert storage.exists(kept.sha256)
    # Work files go once they are a day old: this one is not.
    assert _keys(storage, "work/") != []


def test_the_api_streams_files_with_ranges_or_redirects_to_the_store(
    s3_env: dict[str, str], tmp_path: Path, sqlite_url: str, seaweed: SeaweedServer
):
    migrate(sqlite_url)
    base = {"data_dir": tmp_path / "api", "database_url": sqlite_url, "vgg_weights": "none"}
    image = png_bytes(64, 48)
    with TestClient(create_app(Settings(**base))) as client:
        sha = upload(client, image)["sha256"]
        assert _storage(s3_env, tmp_path / "x").exists(sha)  # in the bucket, not only here
        whole = client.get(f"/v1/assets/{sha}/content")
        assert whole.status_code == 200 and whole.content == image
        assert whole.headers["content-type"] == "image/png"
        part = client.get(f"/v1/assets/{sha}/content", headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.content == image[:10]
        assert part.headers["content-range"] == f"bytes 0-9/{len(image)}"
        assert client.get(f"/v1/assets/{sha}/thumbnail").status_code == 200
    with TestClient(create_app(Settings(**base, storage_redirect_seconds=60))) as client:
        moved = client.get(f"/v1/assets/{sha}/content", follow_redirects=False)
        assert moved.status_code == 307
        location = moved.headers["location"]
        assert location.startswith(seaweed.endpoint)
        direct = httpx.get(location)
        assert direct.status_code == 200 and direct.content == image
        assert direct.headers["content-type"] == "image/png"
