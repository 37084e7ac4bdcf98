"""Decode a range of a video's frames, starting at the keyframe before the range, not at frame 0.

The bundled ffmpeg decodes and hands over raw BGR frames on a pipe. It is given the timestamp of
the first frame wanted (the probe lists every frame's), seeks to a keyframe before it, decodes
from there and drops what comes before that timestamp, so a segment late in a long video costs
its own frames and at most a group of pictures more, not everything before it. Frames come out in
presentation order, upright (ffmpeg applies the rotation metadata as OpenCV does, with the same
colour conversion), one for every frame of the file (`-fps_mode passthrough`: none dropped or
repeated to make a constant rate), so the n-th frame read is frame `first + n` of the probe.
"""

from __future__ import annotations

import contextlib
import math
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from workers.video.ffmpeg import ffmpeg_exe, start_ffmpeg
from workers.video.probe import VideoInfo

_DECODED = re.compile(r"(\d+) frames decoded")


class FrameReader:
    """Frames `first`..`last` (inclusive; fewer when the file ends early) of the video `info`
    describes, with their indexes. Iterate once; `decoded` is then the number of frames ffmpeg
    decoded to deliver them (its own count, read from its report; None when the reading was
    stopped early), which shows where decoding started."""

    def __init__(self, path: Path, info: VideoInfo, first: int, last: int) -> None:
        self.path = Path(path)
        self.info = info
        self.first = first
        self.last = min(last, info.frame_count - 1)
        self.decoded: int | None = None

    def _command(self) -> list[str]:
        # -ss counts from the start of the file, as the probe's timestamps do, in whole
        # microseconds: round down, so the first frame is not cut (the frame before it is at
        # least a microsecond earlier). ffmpeg seeks to a keyframe before that time (by decoding
        # timestamps, from a little earlier when frames are reordered), decodes from there and
        # drops every frame shown before it.
        at = math.floor(self.info.time(self.first) * 1_000_000)
        seek = ["-ss", f"{at / 1_000_000:.6f}"] if self.first > 0 else []
        return [
            ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "verbose",
            *seek,
            "-i",
            str(self.path),
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-frames:v",
            str(self.last - self.first + 1),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
            "pipe:1",
        ]

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        shape = (self.info.height, self.info.width, 3)
        size = math.prod(shape)
        index = self.first
        with tempfile.TemporaryFile() as report:
            process = start_ffmpeg(
                self._command(), stdout=subprocess.PIPE, stderr=report, bufsize=size
            )
            try:
                while index <= self.last:
                    frame = np.empty(shape, np.uint8)
                    if not _read_into(process.stdout, memoryview(frame).cast("B")):
                        break
                    yield index, frame
                    index += 1
            finally:
                if index <= self.last:
                    process.kill()
                with contextlib.suppress(OSError):
                    process.stdout.close()
                process.wait()
                report.seek(0)
                counts = _DECODED.findall(report.read().decode(errors="replace"))
                self.decoded = int(counts[-1]) if counts else None


def _read_into(pipe: IO[bytes], view: memoryview) -> bool:
    """Fill `view` from `pipe`; False when the pipe ends first."""
    filled = 0
    while filled < len(view):
        count = pipe.readinto(view[filled:])
        if not count:
            return False
        filled += count
    return True
