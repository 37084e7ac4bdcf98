"""Find out what a video file holds before any work is spent on it.

The ffmpeg binary reads the container: stream list, codecs, duration and, with one pass that lists
the video packets without decoding them (thousands of times faster than real time), the true frame
count (the count a container advertises is often an estimate), every frame's timestamp (a
variable-frame-rate video keeps its own times through the pipeline, and a segment finds where to
start decoding) and the sample aspect ratio. OpenCV then decodes the first frame: it gives the
upright frame size and the rotation (ffmpeg, which decodes the frames for the pipeline, turns them
the same way), and a file nothing can be decoded from is refused here. Every way a user's upload
can be unusable ends in an `InputError` whose message says which way, so the job fails for good
with words the user can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2

from atelier.errors import InputError
from atelier.video_header import check_frame_pixels, parse_header
from workers.video.ffmpeg import run_ffmpeg, stderr_tail

_TIME_BASE = re.compile(r"^#tb 0: (\d+)/(\d+)$", re.M)
_SAR = re.compile(r"^#sar 0: (\d+)/(\d+)$", re.M)
_PACKET = re.compile(
    r"^0,\s*-?\d+,\s*(-?\d+),\s*(-?\d+),\s*\d+,\s*0x[0-9a-f]+(?:, F=0x([0-9A-F]+))?", re.M
)
_NO_PTS = -(2**63)
_DISCARD = 0x4  # AV_PKT_FLAG_DISCARD
_MP4_FIRST_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"})


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. `width` and `height` are those of the frames as decoded, upright:
    OpenCV applies the rotation metadata (`rotation`, degrees clockwise) while decoding, and so
    does ffmpeg. `sar` is the sample aspect ratio of those upright frames (the shape of a pixel,
    width over height). `pts` holds every frame's timestamp, in presentation order, in units of
    `time_base` seconds from the start of the file, and `end_pts` the time the last frame ends.
    `fps` is the rate the container advertises (at a variable frame rate, not every frame's).
    `has_video` is always true on an info `probe_video` returns (it refuses files without
    video); it is kept so that a stored info reads on its own."""

    width: int
    height: int
    fps: float
    frame_count: int
    duration: float
    rotation: int
    has_video: bool
    has_audio: bool
    audio_codec: str | None
    time_base: Fraction
    pts: tuple[int, ...]
    end_pts: int
    sar: Fraction = Fraction(1)

    def time(self, index: int) -> Fraction:
        """When frame `index` is shown, in seconds from the start of the file; `frame_count`
        gives the time the last frame ends."""
        return (self.end_pts if index == self.frame_count else self.pts[index]) * self.time_base


@dataclass(frozen=True)
class _Timing:
    time_base: Fraction
    pts: tuple[int, ...]
    end_pts: int
    sar: Fraction


def _parse_packets(listing: str, fps: float) -> _Timing | None:
    """Timestamps from ffmpeg's `framecrc` listing of the video packets (one line per packet, in
    decoding order: stream, dts, pts, duration, size, checksum and, unless it is a plain
    keyframe, its flags). Packets flagged to be discarded (those an MP4 edit list cuts) are
    decoded but never shown, so they are no frames. Packets without a timestamp (a raw H.264
    stream) are numbered at `fps`. None when there is no packet."""
    packets = [
        (int(pts), int(duration))
        for pts, duration, flags in _PACKET.findall(listing)
        if not (flags and int(flags, 16) & _DISCARD)
    ]
    if not packets:
        return None
    base = _TIME_BASE.search(listing)
    sar = _SAR.search(listing)
    time_base = Fraction(int(base.group(1)), int(base.group(2))) if base else Fraction(1, 90000)
    if any(pts == _NO_PTS for pts, _ in packets):
        step = max(1, round(1 / (fps * time_base))) if fps > 0 else 1
        packets = [(i * step, step) for i in range(len(packets))]
    packets.sort()
    last_pts, last_duration = packets[-1]
    shape = Fraction(int(sar.group(1)), int(sar.group(2))) if sar and int(sar.group(1)) else 1
    pts = tuple(pts for pts, _ in packets)
    return _Timing(time_base, pts, last_pts + max(last_duration, 1), Fraction(shape))


def _looks_like_mp4(path: Path) -> bool:
    """Whether the file starts like an MP4/QuickTime file (a box of a known type), as opposed to
    any file named .mp4, which ffmpeg's MP4 reader also tries because of the name."""
    with path.open("rb") as file:
        head = file.read(8)
    return head[4:8] in _MP4_FIRST_BOXES


def _refuse_unreadable(path: Path, stderr: str, name: str) -> None:
    """Turn ffmpeg's complaints about the container into the user's words."""
    if "moov atom not found" in stderr and _looks_like_mp4(path):
        raise InputError(f"truncated or unfinished video (its index is missing): {name}")
    if "moov atom not found" in stderr:
        raise InputError(f"not a video: {name} (named like one, but holds something else)")
    if "partial file" in stderr:
        raise InputError(f"truncated video (the file ends before its last frame): {name}")
    if "Invalid data found when processing input" in stderr:
        raise InputError(f"not a video: {name} (ffmpeg cannot recognise its format)")


def read_audio_codec(path: Path) -> str | None:
    """The codec of the first audio stream of `path`, or None when it has none (container only,
    no packet is read)."""
    return parse_header(run_ffmpeg(["-i", str(path)]).stderr).audio_codec


def _refuse_missing(path: Path, name: str) -> None:
    """Raise `InputError` for a file that is not there or holds nothing."""
    if not path.is_file():
        raise InputError(f"no such file: {name}")
    if path.stat().st_size == 0:
        raise InputError(f"empty file: {name}")


def _first_frame(path: Path) -> tuple[bool, Any, float, int]:
    """What OpenCV, which decodes the frames, makes of the file: whether its first frame
    decodes (and that frame), its frame rate (not always known) and its rotation in degrees."""
    capture = cv2.VideoCapture(str(path))
    try:
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        fps = capture.get(cv2.CAP_PROP_FPS)
        rotation = int(capture.get(cv2.CAP_PROP_ORIENTATION_META)) % 360
    finally:
        capture.release()
    return ok, frame, fps, rotation


def probe_video(
    path: Path,
    *,
    max_seconds: float | None = None,
    max_pixels: int | None = None,
    name: str | None = None,
) -> VideoInfo:
    """Describe the video at `path`, or raise `InputError` saying why it cannot be processed:
    missing or empty file, not a video, truncated, no video stream, frames larger than
    `max_pixels` (judged from the header, before a frame is decoded), nothing decodable, or
    longer than `max_seconds`. Messages call the file `name` (default: its file name): a stored
    file is named by its hash, which tells the user nothing."""
    path = Path(path)
    name = name or path.name
    _refuse_missing(path, name)
    result = run_ffmpeg(["-i", str(path), "-map", "0:v:0?", "-c", "copy", "-f", "framecrc", "-"])
    _refuse_unreadable(path, result.stderr, name)
    header = parse_header(result.stderr)
    if header.video_codec is None:
        holds = " (it holds only audio)" if header.audio_codec else ""
        raise InputError(f"no video stream in {name}{holds}")
    if result.returncode != 0:
        raise InputError(f"cannot read {name}: {stderr_tail(result.stderr)}")
    if max_pixels is not None:
        check_frame_pixels(header, max_pixels, name)
    timing = _parse_packets(result.stdout, header.video_fps or 0.0)
    frame_count = len(timing.pts) if timing else 0

    ok, frame, cv_fps, rotation = _first_frame(path)
    if frame_count == 0 or not ok:
        raise InputError(f"no decodable frames in {name} ({header.video_codec} video)")

    fps = cv_fps if cv_fps and cv_fps > 0 else (header.video_fps or 0.0)
    if fps <= 0:
        raise InputError(f"unknown frame rate in {name}")
    duration = float((timing.end_pts - timing.pts[0]) * timing.time_base)
    if max_seconds is not None and duration > max_seconds:
        raise InputError(
            f"video too long: {name} lasts {duration:.1f} s, the limit is {max_seconds:g} s"
        )
    height, width = frame.shape[:2]
    sideways = rotation in (90, 270)
    return VideoInfo(
        width=width,
        height=height,
        fps=fps,
        frame_count=frame_count,
        duration=duration,
        rotation=rotation,
        has_video=True,
        has_audio=header.audio_codec is not None,
        audio_codec=header.audio_codec,
        time_base=timing.time_base,
        pts=timing.pts,
        end_pts=timing.end_pts,
        sar=1 / timing.sar if sideways else timing.sar,
    )
