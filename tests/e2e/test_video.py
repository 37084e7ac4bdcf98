"""`atelier video` end to end: CLI -> Redis -> a real worker running the segments as a chord ->
PostgreSQL and storage -> the output file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import pytest
from celery import Celery
from sqlalchemy import func, select

from atelier.db import session_scope
from atelier.models import FrameStat, Job, JobState
from atelier.read import job_out
from tests.e2e.conftest import TEST_DATA, Deployment
from tests.support.moving import Scene, Walker, make_clip
from tests.video.media import ffmpeg, frame_times, measure_streams

pytestmark = pytest.mark.slow


def _job(deployment: Deployment, stderr: str) -> Job:
    """The job the command announced ("job N: ...")."""
    announced = re.search(r"job (\d+):", stderr)
    assert announced, stderr
    with session_scope(deployment.db_url) as session:
        return session.get(Job, int(announced.group(1)))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of the Chaplin film from 3 s in (640x360, 25 fps, its MP3 audio), where a face is in
    view most of the time."""
    source = TEST_DATA / "video" / "chaplin.mp4"
    out = tmp_path_factory.mktemp("clips") / "chaplin_3s.mp4"
    ffmpeg(
        *("-ss", "3", "-i", str(source), "-t", "3"),
        *("-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"),
        *("-c:a", "copy", str(out)),
    )
    return out


def _frames(path: Path) -> tuple[int, float, tuple[int, int]]:
    """Frame count (by decoding every frame), rate and (width, height), read by OpenCV."""
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    count, size = 0, (0, 0)
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count += 1
        size = (frame.shape[1], frame.shape[0])
    capture.release()
    return count, fps, size


def test_segmented_2x2_board_through_a_real_worker(
    deployment: Deployment, clip: Path, tmp_path: Path
) -> None:
    """Three 1 s segments run on the worker's two processes, are joined with the sound, and the
    job records one row of faces per frame. (Every segment decodes and detects the tracker's
    look-ahead, about 2 s, on both sides: with 1 s segments that is the whole clip each time, so
    detection runs on every 5th frame only.)"""
    out = tmp_path / "board.mp4"
    done = deployment.atelier(
        "video", str(clip), "--out", str(out), "--layout", "2x2",
        "--filters", "blur,cartoon,sketch", "--segment-seconds", "1", "--detect-every", "5",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    frames, fps, size = _frames(clip)
    assert (frames, fps, size) == (75, 25, (640, 360))
    assert _frames(out) == (frames, fps, (2 * 640, 2 * 360))
    source, result = measure_streams(clip), measure_streams(out)
    assert source.audio_seconds is not None and result.audio_seconds is not None
    assert result.audio_seconds == pytest.approx(source.audio_seconds, abs=0.1)
    assert result.audio_seconds == pytest.approx(result.video_seconds, abs=0.1)

    job = _job(deployment, done.stderr)
    assert job.state == JobState.SUCCEEDED and job.attempts == 1
    assert job.meta["segments"] == 3 and job.meta["frames"] == frames
    assert job.meta["duration"] == pytest.approx(3.0, abs=1e-6)
    assert frame_times(out) == pytest.approx(frame_times(clip), abs=1e-6)
    with session_scope(deployment.db_url) as session:
        rows = session.scalars(
            select(FrameStat).where(FrameStat.job_id == job.id).order_by(FrameStat.frame)
        ).all()
        assert [row.frame for row in rows] == list(range(frames))
        assert all(row.faces == len(row.boxes) for row in rows)
        with_faces = sum(1 for row in rows if row.faces)
    assert with_faces == job.meta["frames_with_faces"] >= frames // 3
    summary = " ".join(done.stderr.split())  # the console wraps long lines
    assert f"faces in {with_faces} frames" in summary
    tracked = job.meta["frames_tracked"]
    assert 0 <= tracked <= with_faces
    extra = job.meta["extra_detections"]
    assert f"({tracked} kept covered by tracking through detection gaps;" in summary
    assert f"motion cost {extra} extra detections)" in summary


def test_a_text_file_named_mp4_is_refused_before_any_job(
    deployment: Deployment, tmp_path: Path
) -> None:
    fake = tmp_path / "holiday.mp4"
    fake.write_text("these are my notes, not a film\n" * 20)
    out = tmp_path / "never.mp4"
    with session_scope(deployment.db_url) as s:
        before = s.scalar(select(func.count()).select_from(Job))
    done = deployment.atelier("video", str(fake), "--out", str(out))
    assert done.returncode == 2
    said = " ".join(done.stderr.replace("│", " ").split())  # Rich's error box, unwrapped
    assert "Invalid value for 'SOURCE':" in said and "is not a video Atelier can read" in said
    assert not out.exists()
    with session_scope(deployment.db_url) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == before


@pytest.fixture(scope="module")
def small_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 s of two faces 20-24 px tall walking across a 480x360 street (`tests.support.moving`):
    smaller than the 36 px the haar cascade looks for in a frame that size."""
    scene = Scene(
        "small",
        "tubingen.jpg",
        480,
        360,
        25,
        (Walker(20, 120, 180, 4, 0), Walker(24, 380, 250, -5, 0, mirror=True)),
    )
    return make_clip(scene, tmp_path_factory.mktemp("small"))[0]


def test_no_face_found_warns_and_says_why(
    deployment: Deployment, small_faces: Path, tmp_path: Path
) -> None:
    """Before, the haar detector on faces smaller than it can see finished with "faces in 0
    frames", exit status 0 and no warning: the video came back untouched, as if it were safe.
    Now the job carries a warning, with the reason, which the summary, `atelier status`, the
    API's job body and the task's result show."""
    out = tmp_path / "haar.mp4"
    done = deployment.atelier("video", str(small_faces), "--out", str(out), "--detector", "haar")
    assert done.returncode == 0, done.stderr
    job = _job(deployment, done.stderr)
    assert job.state == JobState.SUCCEEDED and job.meta["frames_with_faces"] == 0
    assert job.warning.startswith("no face was found in any of the 25 frames: the haar detector")
    assert "at least 36 px tall" in job.warning
    said = " ".join(done.stderr.split())
    assert f"warning: {job.warning}" in said
    status = deployment.atelier("status", "--job", str(job.id), "--json")
    assert json.loads(status.stdout)["warning"] == job.warning
    assert job_out(job, None).warning == job.warning
    redis = deployment.env["ATELIER_BROKER_URL"]  # also the result backend, as by default
    task = Celery(broker=redis, backend=redis).AsyncResult(job.celery_task_id)
    assert task.get(timeout=30)["warnings"] == {str(job.id): job.warning}


def test_require_faces_fails_the_job_instead(
    deployment: Deployment, small_faces: Path, tmp_path: Path
) -> None:
    out = tmp_path / "required.mp4"
    done = deployment.atelier(
        "video", str(small_faces), "--out", str(out), "--detector", "haar", "--require-faces"
    )
    assert done.returncode == 1
    job = _job(deployment, done.stderr)
    assert job.state == JobState.FAILED and job.warning is None
    assert job.error.startswith("no face was found") and "--require-faces" in job.error
    assert not out.exists()
