"""What a video's container says about it (frame size as played, duration), read from ffmpeg's
report of the header without decoding a frame: cheap enough for the HTTP upload to answer with it.

Producers use this; the worker's own probe (`workers.video.probe`) checks much more (frame count,
decodability) before any work is spent. Nothing here imports OpenCV.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO_STREAM = re.compile(r"^\s*Stream #0:\d+.*?: Video: (.*)$", re.M)
_SIZE = re.compile(r", (\d{1,5})x(\d{1,5})[\s,\[]")
_ROTATION = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees")


@dataclass(frozen=True)
class VideoHeader:
    width: int | None
    height: int | None
    duration: float | None


def video_header(report: str) -> VideoHeader:
    """Width and height as played (a 90° rotation swaps them) and duration in seconds, from
    ffmpeg's report of the file's header (`atelier.video_frames.header_report`); None for
    whatever the report does not say."""
    report = re.split(r"^Output #|^Stream mapping:", report, maxsplit=1, flags=re.M)[0]
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
