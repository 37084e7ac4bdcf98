"""What a video file's container says about it, read from ffmpeg's report of its header without
decoding a frame: the frame size as played, the duration, the codecs and the frame rate the
container advertises. One parser for every reader: the HTTP upload answers with the size and
duration, thumbnails and `atelier video` check the frame-size limit with it, and the worker's
probe (`workers.video.probe`) takes the codecs and frame rate from it before it checks much more
(frame count, decodability). Nothing here imports OpenCV.

The frame-size limit (`ATELIER_MAX_VIDEO_PIXELS`) is judged here, before any frame is decoded:
an 8192x8192 frame costs 200 MB as soon as one is decoded, in a worker or in the API making a
thumbnail. Producers and workers apply the same rule.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from atelier.errors import InputError

REPORT_TIMEOUT_S = 30.0
# ffmpeg lists the streams of what it writes too (`Output #0`), after those of its input.
_OUTPUT = re.compile(r"^Output #|^Stream mapping:", re.M)
_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM = re.compile(r"^\s*Stream #0:\d+.*?: (Video|Audio): (\w+)(.*)$", re.M)
# The frame size follows a comma (after the pixel format); a codec tag such as `0x001B` does not.
_SIZE = re.compile(r", (\d{1,5})x(\d{1,5})(?=[\s,\[]|$)")
_FPS = re.compile(r"(\d+(?:\.\d+)?) (?:fps|tbr)\b")
_ROTATION = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees")


@dataclass(frozen=True)
class VideoHeader:
    """None for whatever the report does not say. `width` and `height` are those of the frames
    as played: a 90° rotation swaps the stored ones. The video stream is the first one that is
    not a cover picture (`attached pic`)."""

    width: int | None
    height: int | None
    duration: float | None
    video_codec: str | None = None
    video_fps: float | None = None
    audio_codec: str | None = None


def parse_header(report: str) -> VideoHeader:
    """The header of the first input in ffmpeg's report (`header_report`, or the report of any
    ffmpeg command reading the file)."""
    inputs = _OUTPUT.split(report, maxsplit=1)[0]
    duration = None
    if found := _DURATION.search(inputs):
        hours, minutes, seconds = found.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    video = audio = None
    for kind, codec, rest in _STREAM.findall(inputs):
        if kind == "Video" and video is None and "attached pic" not in rest:
            video = (codec, rest)
        elif kind == "Audio" and audio is None:
            audio = codec
    if video is None:
        return VideoHeader(None, None, duration, audio_codec=audio)
    codec, rest = video
    fps = _FPS.search(rest)
    width = height = None
    if size := _SIZE.search(rest):
        width, height = int(size.group(1)), int(size.group(2))
        rotation = _ROTATION.search(inputs)
        if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
            width, height = height, width
    return VideoHeader(width, height, duration, codec, float(fps.group(1)) if fps else None, audio)


def check_frame_pixels(header: VideoHeader, max_pixels: int, name: str) -> None:
    """Raise InputError when the header's video frames are larger than `max_pixels`."""
    if header.width is None or header.height is None:
        return
    pixels = header.width * header.height
    if pixels > max_pixels:
        raise InputError(
            f"video frames too large: {name} is {header.width}x{header.height} = "
            f"{pixels / 1e6:.3g} MP a frame, the limit is {max_pixels / 1e6:.3g} MP"
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
