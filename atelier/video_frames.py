"""The video frame-size limit, judged from ffmpeg's report of a file's header, before any frame
is decoded: an 8192x8192 frame costs 200 MB as soon as one is decoded, in a worker or in the API
making a thumbnail. Producers and workers apply the same rule (`ATELIER_MAX_VIDEO_PIXELS`).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from atelier.errors import InputError

_VIDEO_STREAM = re.compile(r"^\s*Stream #0:\d+.*?: Video: (.*)$", re.M)
_SIZE = re.compile(r"\b(\d{1,5})x(\d{1,5})\b")
REPORT_TIMEOUT_S = 30.0


def frame_size(report: str) -> tuple[int, int] | None:
    """(width, height) of the first video stream of the input in an ffmpeg report, if any."""
    inputs = re.split(r"^Output #|^Stream mapping:", report, maxsplit=1, flags=re.M)[0]
    for rest in _VIDEO_STREAM.findall(inputs):
        size = _SIZE.search(rest)
        if size and "attached pic" not in rest:
            return int(size.group(1)), int(size.group(2))
    return None


def check_frame_pixels(report: str, max_pixels: int, name: str) -> None:
    """Raise InputError when the report's video frames are larger than `max_pixels`."""
    size = frame_size(report)
    if size is not None and size[0] * size[1] > max_pixels:
        raise InputError(
            f"video frames too large: {name} is {size[0]}x{size[1]} = "
            f"{size[0] * size[1] / 1e6:.3g} MP a frame, the limit is {max_pixels / 1e6:.3g} MP"
        )


def header_report(path: Path) -> str:
    """ffmpeg's report of the file's header (streams, sizes; nothing is decoded)."""
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, errors="replace", timeout=REPORT_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as error:
        raise InputError(f"cannot read the video header of {path.name} in time") from error
    return done.stderr
