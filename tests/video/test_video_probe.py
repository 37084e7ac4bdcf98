"""probe_video: what a file holds, and a clear refusal for every kind of unusable upload."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from atelier.errors import InputError
from tests.video.media import FaceVideo, ffmpeg, frame_times, write_raw_video
from workers.video.probe import VideoInfo, probe_video, read_audio_codec


def test_chaplin_is_described_exactly(chaplin: Path) -> None:
    info = probe_video(chaplin)
    assert (info.width, info.height, info.frame_count) == (640, 360, 241)
    assert info.fps == 25 and info.time(1) - info.time(0) == Fraction(1, 25)
    assert info.duration == pytest.approx(9.64)
    assert info.has_video and info.has_audio and info.audio_codec == "mp3"
    assert info.rotation == 0


def test_ntsc_frame_times_are_exact(videos: Path) -> None:
    frames = [np.full((48, 64, 3), i * 20, np.uint8) for i in range(6)]
    path = write_raw_video(videos / "ntsc.mp4", frames, "30000/1001")
    info = probe_video(path)
    assert [info.time(i) for i in range(7)] == [i * Fraction(1001, 30000) for i in range(7)]
    assert info.frame_count == 6 and not info.has_audio and info.audio_codec is None


def test_rotation_metadata_gives_upright_size(face_video: FaceVideo, videos: Path) -> None:
    rotated = videos / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(face_video.path), "-c", "copy", str(rotated))
    info = probe_video(rotated)
    assert (info.width, info.height, info.rotation) == (240, 320, 270)


def test_uneven_times_and_pixel_shape(uneven_face_video: FaceVideo) -> None:
    """Frame times as the decoder reports them, the first 0.25 s in; 128:117 pixels."""
    info = probe_video(uneven_face_video.path)
    times = [float(info.time(i)) for i in range(info.frame_count)]
    assert times == pytest.approx(frame_times(uneven_face_video.path), abs=1e-6)
    assert times[0] == pytest.approx(0.25)
    assert times[20] - times[19] == pytest.approx(0.478, abs=0.002)
    assert info.duration == pytest.approx(1.9, abs=0.01) and info.sar == Fraction(128, 117)


def test_read_audio_codec(chaplin: Path, face_video: FaceVideo) -> None:
    assert read_audio_codec(chaplin) == "mp3"
    assert read_audio_codec(face_video.path) == "aac"


def _truncated(source: Path, target: Path, *, faststart: bool) -> Path:
    """Half of a re-muxed copy of `source`: without its index (moov last, the default) or with
    its index but without half of its frames (moov first)."""
    whole = target.with_suffix(".whole.mp4")
    flags = ["-movflags", "+faststart"] if faststart else []
    ffmpeg("-i", str(source), "-c", "copy", *flags, str(whole))
    data = whole.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def _undecodable(source: Path, target: Path) -> Path:
    """A well-formed MP4 (index first) whose frame data is all zeros."""
    whole = target.with_suffix(".whole.mp4")
    ffmpeg("-i", str(source), "-an", "-c", "copy", "-movflags", "+faststart", str(whole))
    data = bytearray(whole.read_bytes())
    start = data.find(b"mdat") + 4
    data[start:] = bytes(len(data) - start)
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "no such file"),
        ("empty", "empty file"),
        ("text", "not a video"),
        ("truncated", "truncated"),
        ("truncated_faststart", "truncated"),
        ("audio_only", "no video stream"),
        ("undecodable", "no decodable frames"),
    ],
)
def test_unusable_files_are_refused_clearly(
    kind: str, message: str, face_video: FaceVideo, tmp_path: Path
) -> None:
    path = tmp_path / f"{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is a shopping list, not a film\n" * 20)
    elif kind == "truncated":
        _truncated(face_video.path, path, faststart=False)
    elif kind == "truncated_faststart":
        _truncated(face_video.path, path, faststart=True)
    elif kind == "audio_only":
        ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(path))
    elif kind == "undecodable":
        _undecodable(face_video.path, path)
    with pytest.raises(InputError, match=message) as caught:
        probe_video(path)
    assert path.name in str(caught.value)
    # A stored file is named by its hash: messages use the name the caller knows it by.
    with pytest.raises(InputError, match=message) as caught:
        probe_video(path, name="'holiday.mov'")
    assert "'holiday.mov'" in str(caught.value) and path.name not in str(caught.value)


def test_videos_longer_than_the_limit_are_refused(chaplin: Path) -> None:
    assert isinstance(probe_video(chaplin, max_seconds=10), VideoInfo)
    with pytest.raises(InputError, match=r"too long: chaplin.mp4 lasts 9.6 s, the limit is 5 s"):
        probe_video(chaplin, max_seconds=5)


def test_videos_with_frames_over_the_pixel_limit_are_refused(chaplin: Path) -> None:
    assert isinstance(probe_video(chaplin, max_pixels=640 * 360), VideoInfo)
    with pytest.raises(InputError, match=r"too large: chaplin.mp4 is 640x360 = 0.23 MP a frame"):
        probe_video(chaplin, max_pixels=640 * 360 - 1)
