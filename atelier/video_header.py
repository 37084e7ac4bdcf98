"""What a video's container says about it (frame size, duration), read by the ffmpeg binary
without decoding a frame: cheap enough for the HTTP upload to answer with it.

Producers use this; the worker's own probe (`workers.video.probe`) checks much more (frame count,
decodability) before any work is spent. Nothing here imports OpenCV.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO_STREAM = re.compile(r"^\s*Stream #0:\d+.*?: Video: (.*)$", re.M)
_SIZE = re.compile(r", (\d{1,5})x(\d{1,5})[\s,\[]")
_ROTATION = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees")


@dataclass(frozen=True)
class VideoHeader:
    width: int | None
    height: int | None
    duration: float | None


def read_video_header(path: Path, timeout: float = 30) -> VideoHeader:
    """Width and height as played (a 90° rotation swaps them) and duration in seconds; None for
    whatever the container does not say or ffmpeg cannot read."""
    import imageio_ffmpeg

    try:
        done = subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,  # without an output ffmpeg exits 1 after printing the header
        )
    except (subprocess.SubprocessError, OSError):
        return VideoHeader(None, None, None)
    report = re.split(r"^Output #|^Stream mapping:", done.stderr, maxsplit=1, flags=re.M)[0]
    duration = None
    if found := _DURATION.search(report):
        hours, minutes, seconds = found.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    width = height = None
    stream = next((s for s in _VIDEO_STREAM.findall(report) if "attached pic" not in s), None)
    if stream and (size := _SIZE.search(stream + " ")):
        width, height = int(size.group(1)), int(size.group(2))
        rotation = _ROTATION.search(report)
        if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
            width, height = height, width
    return VideoHeader(width, height, duration)
