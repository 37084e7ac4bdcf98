"""Helpers the video tests share: run ffmpeg, write a raw clip, the shapes fixtures return.

They call the bundled ffmpeg directly rather than through the code under test, so a fixture
video or a measurement does not inherit that code's mistakes.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.video.detect import Box
from workers.video.ffmpeg import ffmpeg_exe


def ffmpeg(*args: str) -> None:
    """Run the bundled ffmpeg; fail the test setup with its message if it fails."""
    done = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def write_raw_video(path: Path, frames: list[np.ndarray], fps: str, *audio_args: str) -> Path:
    """Encode BGR frames to H.264 with ffmpeg directly (not through the code under test)."""
    height, width = frames[0].shape[:2]
    command = [
        ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "-video_size",
        f"{width}x{height}",
        "-framerate",
        fps,
        "-i",
        "pipe:0",
        *audio_args,
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "16",
        "-pix_fmt",
        "yuv420p",
        str(path),
    ]
    done = subprocess.run(command, input=b"".join(f.tobytes() for f in frames), capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    return path


@dataclass(frozen=True)
class FaceVideo:
    path: Path
    truth: list[Box]  # the face's box in every frame


@dataclass(frozen=True)
class Streams:
    video_seconds: float | None
    audio_seconds: float | None
    audio_codec: str | None


def _stream_seconds(path: Path, selector: str) -> float | None:
    copy_to_nowhere = ["-map", selector, "-c", "copy", "-f", "null", "-"]
    done = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), *copy_to_nowhere],
        capture_output=True,
        text=True,
    )
    times = re.findall(r"time=(\d+):(\d+):(\d+\.\d+)", done.stderr)
    if done.returncode != 0 or not times:
        return None
    hours, minutes, seconds = times[-1]
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def measure_streams(path: Path) -> Streams:
    """Durations of a file's video and audio streams (None: no such stream) and its audio codec,
    measured by ffmpeg independently of the code under test."""
    header = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    ).stderr
    codec = re.search(r"Stream #0:\d+.*?: Audio: (\w+)", header)
    return Streams(
        _stream_seconds(path, "0:v:0"),
        _stream_seconds(path, "0:a:0"),
        codec.group(1) if codec else None,
    )


def frame_times(path: Path) -> list[float]:
    """When each frame of `path` is shown (seconds), in order, as ffmpeg's decoder reports them
    (`showinfo`), not from the packet listing the code under test reads."""
    showinfo = ["-map", "0:v:0", "-vf", "showinfo", "-fps_mode", "passthrough", "-f", "null", "-"]
    done = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), *showinfo],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return [float(t) for t in re.findall(r"\bn:\s*\d+ .*?pts_time:(-?[\d.]+)", done.stderr)]


def sample_aspect(path: Path) -> str:
    """The sample aspect ratio of the first video stream of `path` as ffmpeg's header lists it
    ("128:117"; "1:1" for square pixels)."""
    header = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    ).stderr
    found = re.search(r"Stream #0:\d+.*?: Video: .*?\[SAR (\d+:\d+) DAR", header)
    return found.group(1) if found else "1:1"
