"""Videos for the video pipeline's tests, made once per session and kept tiny.

`chaplin_clip` is the first 2 s of the test data's Chaplin film at 320x180 (real footage, real MP3
audio); `chaplin_faces` is 1.2 s of it at full size where a face is in view and moving (at 320x180
the cascade finds hardly any). `face_video` is synthetic: a downscaled photo of Grace Hopper slides
over a moving textured background, so the true face position of every frame is known;
`uneven_face_video` is the same frames at uneven times, with pixels 128:117 wide and a keyframe
every 8 frames, as phones and screen recorders write them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import TEST_DATA
from tests.support.faces import decode_all
from tests.video.media import FaceVideo, Streams, ffmpeg, measure_streams, write_raw_video
from workers.video.detect import Box

FACE_SCALE = 0.25
FACE_IN_PHOTO = Box(155, 105, 222, 222)  # where OpenCV's cascade finds the face in the full photo


def _data(relative: str) -> Path:
    return TEST_DATA / relative


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def chaplin() -> Path:
    return _data("video/chaplin.mp4")


@pytest.fixture(scope="session")
def full_face_photo() -> np.ndarray:
    """The 512x600 portrait; its face is at FACE_IN_PHOTO."""
    return cv2.imread(str(_data("faces/grace_hopper.jpg")))


@pytest.fixture(scope="session")
def face_photo(full_face_photo: np.ndarray) -> np.ndarray:
    return cv2.resize(
        full_face_photo, None, fx=FACE_SCALE, fy=FACE_SCALE, interpolation=cv2.INTER_AREA
    )


@pytest.fixture(scope="session")
def chaplin_clip(chaplin: Path, videos: Path) -> Path:
    """50 frames (2 s at 25 fps), 320x180, with the film's MP3 audio copied."""
    clip = videos / "chaplin_clip.mp4"
    ffmpeg(
        *("-i", str(chaplin), "-t", "2", "-vf", "scale=320:180"),
        *("-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-pix_fmt", "yuv420p"),
        *("-c:a", "copy", str(clip)),
    )
    return clip


@pytest.fixture(scope="session")
def chaplin_faces(chaplin: Path, videos: Path) -> Path:
    """30 frames (1.2 s at 25 fps, from 3.4 s in), 640x360, MP3 audio: a face moves across most
    of them and the cascade misses it in a few, so keyframe placement shows in the boxes."""
    clip = videos / "chaplin_faces.mp4"
    ffmpeg(
        *("-ss", "3.4", "-i", str(chaplin), "-t", "1.2"),
        *("-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-pix_fmt", "yuv420p"),
        *("-c:a", "copy", str(clip)),
    )
    return clip


def _background(width: int, height: int, shift: int) -> np.ndarray:
    """A smooth colour gradient crossed by moving soft stripes: texture without faces."""
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))
    channels = (
        90 + 60 * np.sin((xs + shift) / 23.0),
        120 + 50 * np.cos((ys + shift) / 31.0),
        100 + 0.3 * xs + 0.2 * ys,
    )
    return np.stack(channels, axis=-1).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def face_video(face_photo: np.ndarray, videos: Path) -> FaceVideo:
    """40 frames of 320x240 at 25 fps: the photo glides left to right on a gentle wave, over a
    moving background, with 1.6 s of AAC sine tone."""
    width, height, count = 320, 240, 40
    ph, pw = face_photo.shape[:2]
    fx, fy, fw, fh = (round(v * FACE_SCALE) for v in FACE_IN_PHOTO)
    frames, truth = [], []
    for i in range(count):
        x = round(5 + (width - pw - 10) * i / (count - 1))
        y = round((height - ph) / 2 + 20 * np.sin(i / 6))
        frame = _background(width, height, 3 * i)
        frame[y : y + ph, x : x + pw] = face_photo
        frames.append(frame)
        truth.append(Box(x + fx, y + fy, fw, fh))
    path = write_raw_video(
        videos / "face.mp4",
        frames,
        "25",
        *("-f", "lavfi", "-i", "sine=frequency=440:duration=1.6"),
        *("-c:a", "aac", "-shortest"),
    )
    return FaceVideo(path, truth)


UNEVEN_TIMES = (
    "(250 + N*38 + if(eq(mod(N,3),1),-18,0) + if(eq(mod(N,3),2),22,0) + if(gte(N,20),400,0))"
    "/1000/TB"
)
"""Frame times in ms: from 0.25 s after the sound starts, 38 ms apart on average, but 20, 78 and
16 ms in turn, and 0.4 s of pause before frame 20."""


@pytest.fixture(scope="session")
def uneven_face_video(face_video: FaceVideo, videos: Path) -> FaceVideo:
    """`face_video`'s 40 frames at variable frame rate (`UNEVEN_TIMES`: 1.9 s of video starting
    0.25 s into 2.2 s of AAC tone), sample aspect ratio 128:117, keyframes at frames 0, 8, 16, 24
    and 32."""
    path = videos / "uneven.mp4"
    ffmpeg(
        *("-i", str(face_video.path), "-f", "lavfi", "-i", "sine=frequency=330:duration=2.2"),
        *("-map", "0:v", "-map", "1:a", "-vf"),
        f"settb=1/1000,setpts='{UNEVEN_TIMES}',setsar=sar=128/117:max=1000",
        *("-fps_mode", "passthrough", "-enc_time_base", "1/1000"),
        *("-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-pix_fmt", "yuv420p"),
        *("-g", "8", "-keyint_min", "8", "-sc_threshold", "0", "-c:a", "aac", str(path)),
    )
    return FaceVideo(path, face_video.truth)


@pytest.fixture(scope="session")
def decode() -> Callable[[Path], list[np.ndarray]]:
    """All frames of a video, decoded by OpenCV (as the face benchmark decodes them)."""
    return decode_all


@pytest.fixture(scope="session")
def streams() -> Callable[[Path], Streams]:
    """Durations of a file's video and audio streams and its audio codec (see `measure_streams`)."""
    return measure_streams
