"""Three hosts in effect: three worker processes, each with a data folder of its own and no
folder shared with anyone, finish a content x style grid of both engines and a segmented video
against a real object store (SeaweedFS), while the API, a fourth process with a folder of its
own, serves the results from the store."""

from __future__ import annotations

import hashlib
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from atelier.batches import (
    create_nst_batch,
    create_video_job,
    ingest_image,
    ingest_video,
    send_plan,
)
from atelier.celery_app import create_app
from atelier.db import migrate, session_scope
from atelier.models import Asset, Job, JobState
from atelier.objectstore import ObjectStorage, s3_client
from atelier.schemas import NSTParams, VideoParams
from atelier.settings import Settings
from atelier.storage import open_storage
from tests.faults.harness import cut_clip, wait_finished
from tests.support.load import serve
from tests.support.procs import atelier_process, stop_all
from tests.support.seaweed import BUCKET
from tests.support.services import deployment_env

pytestmark = pytest.mark.slow
HOSTS = ("host-a", "host-b", "host-c")
GATYS = NSTParams(
    size=32, iterations=2, content_layer="block1_conv2", style_layers=("block1_conv1",)
)


def test_three_workers_sharing_no_folder_finish_grids_and_a_segmented_video(
    tmp_path: Path, s3_env: dict[str, str], squares: list[Path], test_data: Path
):
    # What is proved is the plumbing, so the work is small: 32 px squares (one shape: the Gatys
    # step compiles once), two Gatys iterations on random weights through VGG19's first block
    # only (a small step to compile), half a second of film in four segments.
    clip = cut_clip(test_data / "video" / "chaplin.mp4", tmp_path / "clip.mp4", 5.0, 0.5)
    with deployment_env(tmp_path, **s3_env) as env, ExitStack() as stack:
        migrate(env["ATELIER_DATABASE_URL"])
        logs = {host: tmp_path / f"{host}.log" for host in HOSTS}
        workers = []
        for host in HOSTS:
            own = {**env, "ATELIER_DATA_DIR": str(tmp_path / host)}
            args = ["worker", "--queues", "nst,fast,video,default", "--hostname", f"{host}@%h"]
            workers.append(stack.enter_context(atelier_process(args, own, logs[host], None)))
        stack.callback(stop_all, workers)  # at the end, all at once
        api = stack.enter_context(
            serve({**env, "ATELIER_DATA_DIR": str(tmp_path / "api")}, tmp_path / "api.log")
        )
        # The producer: a folder of its own too; its files reach the workers through the store.
        settings = Settings(
            database_url=env["ATELIER_DATABASE_URL"],
            broker_url=env["ATELIER_BROKER_URL"],
            data_dir=tmp_path / "producer",
            vgg_weights="none",
        )
        db = settings.resolved_database_url
        with session_scope(db) as session:
            named = {path.stem: path for path in squares}
            pick = [
                named[name] for name in ("tubingen", "golden_gate", "starry_night", "wave_crop")
            ]
            contents = [ingest_image(session, settings, p).sha256 for p in pick[:2]]
            styles = [ingest_image(session, settings, p).sha256 for p in pick[2:]]
            video = ingest_video(session, settings, clip).sha256
        plans = [
            create_nst_batch(settings, contents, styles, GATYS),
            create_nst_batch(settings, contents, styles, NSTParams(engine="fast", size=32)),
            create_video_job(settings, video, VideoParams(filter="blur", segment_seconds=0.1)),
        ]
        app = create_app(settings)
        for plan in plans:
            send_plan(app, settings, plan)
        ids = [job_id for plan in plans for job_id in plan.job_ids]
        wait_finished(db, ids, 400)
        with session_scope(db) as session:
            rows = list(session.scalars(select(Job).where(Job.id.in_(ids)).order_by(Job.id)))
            results = {
                row.id: session.get(Asset, row.result_asset_id).sha256
                for row in rows
                if row.result_asset_id
            }
        tails = "\n".join(f"--- {h}\n{logs[h].read_text()[-2500:]}" for h in HOSTS)
        assert [row.state for row in rows] == [JobState.SUCCEEDED] * len(ids), tails
        assert rows[-1].meta["segments"] == 4
        # The segments ran on more than one host, and met at the join through the store.
        segment_hosts = [h for h in HOSTS if "atelier.video.segment" in logs[h].read_text()]
        assert len(segment_hosts) >= 2, tails
        storage = open_storage(settings)
        assert isinstance(storage, ObjectStorage)
        work = s3_client().list_objects_v2(Bucket=BUCKET, Prefix=storage.location.prefix + "work/")
        assert work.get("KeyCount", 0) == 0  # the join removed the segments
        # The API serves every result from the store, byte for byte.
        with httpx.Client(base_url=api, timeout=60) as client:
            for job_id, sha in results.items():
                got = client.get(f"/v1/jobs/{job_id}/result")
                assert got.status_code == 200, got.text
                assert hashlib.sha256(got.content).hexdigest() == sha
            part = client.get(f"/v1/jobs/{rows[-1].id}/result", headers={"Range": "bytes=0-99"})
            assert part.status_code == 206 and len(part.content) == 100
        # No host used a local folder to hand segments over.
        for host in HOSTS:
            assert not list((tmp_path / host / "storage" / "tmp").glob("segments-*"))
