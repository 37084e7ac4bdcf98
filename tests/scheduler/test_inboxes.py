"""Folder inboxes: new images become one NST batch, each file is taken once, non-images are
refused once with the reason."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
import redis
from PIL import Image
from sqlalchemy import select

from atelier.db import session_scope
from atelier.models import Batch, InboxFile, Job
from atelier.settings import Settings
from scheduler import inboxes as inbox_module
from scheduler.broker import job_ids_in
from scheduler.inboxes import InboxConfigError, load_inboxes, scan_inboxes

TINY = {"size": 24, "iterations": 2}


def _settled(path: Path) -> Path:
    """Make the file look written a while ago."""
    old = os.stat(path).st_mtime - 10
    os.utime(path, (old, old))
    return path


def _image(path: Path, color: tuple[int, int, int], fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 20), color).save(path, format=fmt)
    return _settled(path)


def _config(folder: Path, styles: list[str], **extra: object) -> str:
    spec = {"folder": str(folder), "styles": styles, "params": TINY, "settle_seconds": 1, **extra}
    return json.dumps({"photos": spec})


def _forget_seen_files() -> None:
    """What a restart of the worker process does to the in-memory cache."""
    inbox_module._known.clear()


@pytest.fixture(autouse=True)
def _fresh_cache():
    _forget_seen_files()
    yield
    _forget_seen_files()


def _rows(settings: Settings) -> list[InboxFile]:
    with session_scope(settings.resolved_database_url) as session:
        return list(session.scalars(select(InboxFile).order_by(InboxFile.id)))


def _batches(settings: Settings) -> list[tuple[Batch, list[Job]]]:
    with session_scope(settings.resolved_database_url) as session:
        batches = session.scalars(select(Batch).order_by(Batch.id)).all()
        return [(b, list(b.jobs)) for b in batches]


def _nst_messages(redis_url: str) -> list[list[int]]:
    client = redis.Redis.from_url(redis_url)
    return [job_ids_in(json.loads(raw)) for raw in client.lrange("nst", 0, -1)]


def test_new_images_become_one_batch_and_are_taken_once(
    tmp_path: Path, redis_runtime, redis_url: str
):
    inbox = tmp_path / "inbox"
    style = _image(tmp_path / "styles" / "wave.png", (0, 0, 200))
    _image(inbox / "a.png", (200, 0, 0))
    _image(inbox / "b.jpg", (0, 200, 0), fmt="JPEG")
    (inbox / "notes.jpg").write_text("this is text, not a JPEG")
    (inbox / ".hidden.png").write_bytes((inbox / "a.png").read_bytes() + b"x")
    (inbox / "upload.png.part").write_bytes(b"\x89PNG half")
    for path in (inbox / "notes.jpg", inbox / ".hidden.png", inbox / "upload.png.part"):
        _settled(path)
    settings, app = redis_runtime(inboxes=_config(inbox, [str(style)]))

    [report] = scan_inboxes(settings, app)
    assert sorted(report.taken) == ["a.png", "b.jpg"]
    assert list(report.refused) == ["notes.jpg"]
    assert "not an image" in report.refused["notes.jpg"]
    [(batch, jobs)] = _batches(settings)
    assert batch.source == "inbox:photos" and batch.id == report.batch_id
    assert len(jobs) == 2 and all(job.params["size"] == 24 for job in jobs)
    assert sorted(i for ids in _nst_messages(redis_url) for i in ids) == [j.id for j in jobs]
    rows = _rows(settings)
    assert sorted(r.name for r in rows) == ["a.png", "b.jpg", "notes.jpg"]
    refused = next(r for r in rows if r.name == "notes.jpg")
    assert refused.batch_id is None and "not an image" in refused.error

    # Later scans, also after a restart, take nothing again; not even a copy under a new name.
    assert scan_inboxes(settings, app)[0].taken == []
    _forget_seen_files()
    _settled(Path(shutil.copy2(inbox / "a.png", inbox / "a copy.png")))
    again = scan_inboxes(settings, app)[0]
    assert again.taken == [] and again.refused == {} and again.batch_id is None
    assert len(_batches(settings)) == 1

    # A new image is a new batch of its own.
    _image(inbox / "c.png", (9, 9, 9))
    third = scan_inboxes(settings, app)[0]
    assert third.taken == ["c.png"] and len(third.job_ids) == 1
    assert len(_batches(settings)) == 2


def test_a_file_still_being_written_waits(tmp_path: Path, embedded_runtime):
    inbox = tmp_path / "inbox"
    path = _image(inbox / "a.png", (1, 2, 3))
    os.utime(path)  # modified just now
    settings, app = embedded_runtime(inboxes=_config(inbox, [str(path)], settle_seconds=60))
    report = scan_inboxes(settings, app)[0]
    assert report.taken == [] and _rows(settings) == []


def test_files_taken_by_a_scan_that_crashed_are_batched_next_time(tmp_path: Path, embedded_runtime):
    inbox = tmp_path / "inbox"
    style = _image(tmp_path / "s.png", (0, 0, 1))
    _image(inbox / "a.png", (1, 0, 0))
    settings, app = embedded_runtime(inboxes=_config(inbox, ["/nowhere/style.png"]))
    # The style is missing: the file is taken, but no batch can be made yet.
    [report] = scan_inboxes(settings, app)
    assert report.batch_id is None
    [row] = _rows(settings)
    assert row.batch_id is None and row.error is None
    # Once the configuration is right, the waiting file goes into a batch.
    settings = settings.model_copy(update={"inboxes": _config(inbox, [str(style)])})
    [report] = scan_inboxes(settings, app)
    assert report.taken == [] and report.batch_id is not None
    assert _rows(settings)[0].batch_id == report.batch_id


def test_styles_may_be_stored_assets(tmp_path: Path, embedded_runtime):
    from atelier.batches import ingest_image

    inbox = tmp_path / "inbox"
    _image(inbox / "a.png", (1, 0, 0))
    settings, app = embedded_runtime()
    with session_scope(settings.resolved_database_url) as session:
        sha = ingest_image(session, settings, _image(tmp_path / "s.png", (0, 0, 1))).sha256
    settings = settings.model_copy(update={"inboxes": _config(inbox, [sha])})
    [report] = scan_inboxes(settings, app)
    [(_, [job])] = _batches(settings)
    assert job.inputs["styles"] == [sha] and report.job_ids == [job.id]


def test_concurrent_scans_make_one_batch(tmp_path: Path, redis_runtime):
    inbox = tmp_path / "inbox"
    style = _image(tmp_path / "s.png", (0, 0, 1))
    for i in range(6):
        _image(inbox / f"{i}.png", (i, 0, 0))
    settings, app = redis_runtime(inboxes=_config(inbox, [str(style)]))
    start = threading.Barrier(3)
    reports = []

    def scan() -> None:
        start.wait()
        reports.extend(scan_inboxes(settings, app))

    threads = [threading.Thread(target=scan) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(name for r in reports for name in r.taken) == [f"{i}.png" for i in range(6)]
    [(_, jobs)] = _batches(settings)
    assert len(jobs) == 6 and len(_rows(settings)) == 6


def test_inboxes_are_read_from_json_or_toml(tmp_path: Path):
    toml = tmp_path / "inboxes.toml"
    toml.write_text(
        '[scans]\nfolder = "/srv/scans"\nstyles = ["/srv/wave.jpg"]\n'
        "[scans.params]\nsize = 512\niterations = 300\n"
    )
    [inbox] = load_inboxes(Settings(inboxes=str(toml)))
    assert inbox.name == "scans" and inbox.params.size == 512 and inbox.settle_seconds == 2.0
    as_json = tmp_path / "inboxes.json"
    as_json.write_text(json.dumps({"a": {"folder": "/a", "styles": ["x.png"]}}))
    assert [i.name for i in load_inboxes(Settings(inboxes=str(as_json)))] == ["a"]
    assert load_inboxes(Settings(inboxes=None)) == []


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ('{"../up": {"folder": "/a", "styles": ["s"]}}', "name"),
        ('{"a": {"folder": "/a", "styles": []}}', "styles"),
        ('{"a": {"folder": "/a", "styles": ["s"], "colour": 1}}', "colour"),
        ('{"a": {"folder": "/a", "styles": ["s"], "params": {"iterations": -1}}}', "iterations"),
        ('{"a": {"folder": "/a", "styles": ["s"]', "cannot read"),
        ("/no/such/inboxes.toml", "cannot read"),
        ('["a"]', "invalid inbox"),
    ],
)
def test_a_bad_inbox_configuration_is_refused_with_the_reason(spec: str, words: str):
    with pytest.raises(InboxConfigError, match=words):
        load_inboxes(Settings(inboxes=spec))


def test_a_file_name_that_is_not_utf8_is_refused_and_the_scan_goes_on(
    tmp_path: Path, redis_runtime
):
    inbox = tmp_path / "inbox"
    style = _image(tmp_path / "s.png", (0, 0, 1))
    weird = _image(inbox / os.fsdecode(b"caf\xe9.png"), (1, 0, 0))  # Latin-1, not UTF-8
    _image(inbox / "z.png", (2, 0, 0))
    settings, app = redis_runtime(inboxes=_config(inbox, [str(style)]))
    [report] = scan_inboxes(settings, app)
    assert report.taken == ["z.png"] and report.batch_id is not None
    assert "UTF-8" in report.refused["caf\\xe9.png"]
    assert {(r.name, r.batch_id is None) for r in _rows(settings)} == {
        ("caf\\xe9.png", True),
        ("z.png", False),
    }
    assert scan_inboxes(settings, app)[0].refused == {}  # refused once, not at every scan
    # Outside inboxes (`atelier stylize`) such a file is stored with a printable label.
    from atelier.batches import ingest_image

    with session_scope(settings.resolved_database_url) as session:
        assert ingest_image(session, settings, weird).label == "caf\\xe9.png"


def test_a_crash_before_the_files_are_marked_leaves_no_batch_behind(tmp_path: Path, redis_runtime):
    """The database refuses the write that marks the files batched (as if the scan died
    there): the batch goes with it, and the next scan makes exactly one."""
    from sqlalchemy import text

    inbox = tmp_path / "inbox"
    style = _image(tmp_path / "s.png", (0, 0, 1))
    _image(inbox / "a.png", (1, 0, 0))
    settings, app = redis_runtime(inboxes=_config(inbox, [str(style)]))
    crash = (
        "CREATE FUNCTION crash() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'crash'; END $$"
        " LANGUAGE plpgsql;"
        " CREATE TRIGGER crash BEFORE UPDATE ON inbox_files FOR EACH ROW EXECUTE FUNCTION crash()"
    )
    with session_scope(settings.resolved_database_url) as session:
        session.execute(text(crash))
    with pytest.raises(Exception, match="crash"):
        scan_inboxes(settings, app)
    with session_scope(settings.resolved_database_url) as session:
        session.execute(text("DROP TRIGGER crash ON inbox_files"))
    [report] = scan_inboxes(settings, app)
    assert report.batch_id is not None
    [(batch, jobs)] = _batches(settings)
    assert batch.id == report.batch_id and len(jobs) == 1
    assert [r.batch_id for r in _rows(settings)] == [batch.id]


@pytest.mark.slow
def test_the_beat_sends_its_inbox_configuration_to_the_worker(tmp_path: Path, pg_url: str):
    """Only the beat has ATELIER_INBOXES (as the README shows); the worker scans anyway."""
    from tests.support.procs import atelier_process
    from tests.support.services import fresh_redis_db

    inbox = tmp_path / "inbox"
    style = _image(tmp_path / "s.png", (0, 0, 1))
    _image(inbox / "a.png", (1, 0, 0))
    with fresh_redis_db() as broker:
        env = {
            "ATELIER_DATABASE_URL": pg_url,
            "ATELIER_BROKER_URL": broker,
            "ATELIER_DATA_DIR": str(tmp_path / "data"),
            "ATELIER_INBOX_INTERVAL": "1",
        }
        beat_env = {**env, "ATELIER_INBOXES": _config(inbox, [str(style)])}
        settings = Settings(database_url=pg_url)
        with (
            atelier_process(["worker", "-Q", "default"], env, tmp_path / "w.log", " ready."),
            atelier_process(["beat"], beat_env, tmp_path / "beat.log", "beat: reaper"),
        ):
            deadline = 60
            while deadline and not _batches(settings):
                time.sleep(0.5)
                deadline -= 0.5
        [(batch, [job])] = _batches(settings)
    assert batch.source == "inbox:photos" and job.params["size"] == TINY["size"]


def test_files_removed_from_the_folder_are_forgotten(tmp_path: Path, embedded_runtime):
    """The cache of files already seen holds only what the configured folders hold now: an
    inbox that sees a million files come and go does not keep a million entries."""
    inbox = tmp_path / "inbox"
    style = _image(tmp_path / "styles" / "wave.png", (0, 0, 200))
    kept = _image(inbox / "kept.png", (1, 2, 3))
    for index in range(3):
        _image(inbox / f"gone{index}.png", (10 * index, 5, 5))
    settings, app = embedded_runtime(inboxes=_config(inbox, [str(style)]))
    assert len(scan_inboxes(settings, app)[0].taken) == 4
    assert len(inbox_module._known) == 4
    for index in range(3):
        (inbox / f"gone{index}.png").unlink()
    assert scan_inboxes(settings, app)[0].taken == []
    assert list(inbox_module._known) == [("photos", str(kept))]
    # An inbox no longer configured is forgotten at the next scan of the others.
    assert scan_inboxes(settings, app, []) == [] and inbox_module._known == {}
