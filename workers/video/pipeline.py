"""One video job from file to file: decode, find faces, filter, tile, encode.

Frames stream through one at a time; the face tracker holds a look-ahead of about two seconds of
them (`TrackOptions.reach`), so memory does not grow with the video's length. A job may cover the
whole video or one range of frames; `plan_segments` cuts a long video into ranges that separate
workers process at the same time, each into a file without sound, and `encode.join_segments`
joins them and adds the sound once. A range is processed from the detection keyframe `reach`
frames before its first frame to the one `reach` frames after its last frame: a frame's boxes
depend only on the detections that near, so its face boxes, and therefore its frames, are those
the whole-video run produces; ffmpeg decodes it from the video keyframe before that
(`frames.FrameReader`), not from frame 0. Every output frame keeps the timestamp of its input
frame and the pixels keep their shape.
"""

from __future__ import annotations

import contextlib
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from atelier.errors import InputError, JobCancelled
from atelier.schemas import VideoParams
from workers.video.detect import Box, make_detector
from workers.video.encode import AudioTrack, FfmpegWriter
from workers.video.filters import PAINTING, apply_filter
from workers.video.frames import FrameReader
from workers.video.layout import BoardGeometry, compose_board, plan_board
from workers.video.probe import VideoInfo, probe_video
from workers.video.track import TrackOptions, track_faces

REPORT_EVERY = 10
"""Frames between two progress reports (and cancellation checks)."""


@dataclass(frozen=True)
class VideoStats:
    """What a run produced: frame count, rate and size of the output, the face boxes of every
    output frame (input-frame pixels; empty when they were handed to `on_faces` instead), the
    wall-clock seconds the run took, how long the output plays (from its first frame's time to
    the end of its last frame, as in the input), when, in the input, its first frame is shown
    (seconds from the start of the file), on how many frames the tracker kept a face covered
    through a detection gap, how many frames had a face, how many detector runs detection on
    demand added (`workers.video.refine`), and how many faces were lost inside the picture and
    not found again (the first last seen on frame `first_lost`)."""

    frames: int
    fps: float
    width: int
    height: int
    faces: list[list[Box]]
    seconds: float
    duration: float
    start: float
    tracked: int = 0
    with_faces: int = 0
    searched: int = 0
    lost: int = 0
    first_lost: int | None = None


def plan_segments(info: VideoInfo, segment_seconds: float) -> list[tuple[int, int]]:
    """Frame ranges [start, end) of about `segment_seconds` each, by the frames' timestamps (at a
    varying frame rate, equal times, not equal frame counts), covering the whole video; one
    range when `segment_seconds` is 0. A remainder shorter than half a segment joins the last
    range rather than becoming a tiny job of its own."""
    total = info.frame_count
    if segment_seconds <= 0 or total == 0:
        return [(0, total)]
    step = max(1, round(Fraction(segment_seconds) / info.time_base))
    starts = [0]
    while (following := bisect_left(info.pts, info.pts[starts[-1]] + step)) < total:
        starts.append(max(following, starts[-1] + 1))
    if len(starts) > 1 and info.end_pts - info.pts[starts[-1]] < step / 2:
        starts.pop()
    return [(start, end) for start, end in zip(starts, [*starts[1:], total], strict=True)]


def process_video(
    src: Path,
    dst: Path,
    params: VideoParams,
    *,
    start_frame: int = 0,
    end_frame: int | None = None,
    with_audio: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    model_path: Path | str | None = None,
    style_path: Path | str | None = None,
    on_faces: Callable[[int, list[list[Box]]], None] | None = None,
) -> VideoStats:
    """Filter the faces of frames [start_frame, end_frame) of `src` into `dst` (H.264 MP4).

    The input's audio for that range is muxed in when `with_audio` and `params.keep_audio` both
    allow it (segments are written without it and get it when joined). `on_progress(done, total)`
    is called at the start, every `REPORT_EVERY` frames and at the end; `should_stop()` is asked
    at the same moments and, when true, the run raises `JobCancelled` and leaves no `dst`.
    `style_path` is the painting of the `painting` filter. `on_faces(first, boxes)` receives the
    face boxes of frames `first`, `first + 1`, ... as the run goes, every `REPORT_EVERY` frames
    and at the end; given it, nothing of a frame is kept once it is written, so memory does not
    grow with the video's length. Raises `InputError` for an unusable input."""
    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    info = probe_video(src)
    end = _range_end(info, start_frame, end_frame)
    every = params.detect_every
    tracking = TrackOptions.for_rate(info.fps, every)
    first_key, next_key = _keyframes(tracking.reach(every), every, start_frame, end)
    detector = make_detector(params.detector, model_path, params.profile)
    board = _Board(params, info, _painter(params, style_path))
    audio = _audio(src, info, params, start_frame, end) if with_audio else None
    origin = info.pts[start_frame]  # frames keep the input's times, counted from here
    delay = _first_shown(info, start_frame, with_audio)
    shown = (*info.pts, info.end_pts)
    run = _Run(start_frame, end - start_frame, on_progress, should_stop, on_faces)
    run.checkpoint()
    size = (board.geometry.width, board.geometry.height)
    writer = FfmpegWriter(dst, *size, info.time_base, sar=info.sar, delay=delay, audio=audio)
    frames = iter(FrameReader(src, info, first_key, next_key))
    with writer, contextlib.closing(frames):
        for index, frame, boxes, bridged, runs, gone in track_faces(
            frames, detector, every, tracking
        ):
            if index < start_frame:
                continue
            if index >= end:
                break
            pts, duration = shown[index] - origin, shown[index + 1] - shown[index]
            writer.write(board(frame, boxes), pts, duration)
            run.add(index, boxes, bridged, runs, gone)
        if not run.done:
            raise InputError(f"no decodable frames in {src.name} from frame {start_frame}")
        run.hand_over()
        run.checkpoint()
    return run.stats(info, board.geometry, time.perf_counter() - started)


def _range_end(info: VideoInfo, start_frame: int, end_frame: int | None) -> int:
    """The end of the frames to filter: `end_frame`, within the video; an empty range is the
    caller's mistake (ValueError), not the input's."""
    end = info.frame_count if end_frame is None else min(end_frame, info.frame_count)
    if not 0 <= start_frame < end:
        raise ValueError(f"frame range [{start_frame}, {end}) of {info.frame_count} is empty")
    return end


def _first_shown(info: VideoInfo, start_frame: int, with_audio: bool) -> Fraction:
    """When the output's first frame is shown. A finished file from frame 0 starts its video
    when the input's does (after its sound, in some files); a segment starts at 0, and joining
    puts it in place."""
    return info.time(0) if with_audio and start_frame == 0 else Fraction(0)


def _keyframes(reach: int, every: int, start_frame: int, end: int) -> tuple[int, int]:
    """The detection keyframes `reach` frames before the range and after its last frame: the
    frames to decode so the range's boxes are those of the whole video."""
    return max(0, start_frame - reach) // every * every, -(-(end - 1 + reach) // every) * every


def _painter(params: VideoParams, style_path: Path | str | None) -> Callable[..., Any] | None:
    """The fast engine's painter of the `painting` filter, when a panel uses it."""
    if PAINTING not in params.panel_filters():
        return None
    if style_path is None:
        raise InputError("the painting filter needs a painting (`style`)")
    from workers.video.painting import Painter

    return Painter(style_path)


def _audio(
    src: Path, info: VideoInfo, params: VideoParams, start_frame: int, end: int
) -> AudioTrack | None:
    """The input's sound over frames [start_frame, end), when it has some and it is kept."""
    if not (params.keep_audio and info.has_audio):
        return None
    whole = start_frame == 0 and end == info.frame_count
    return AudioTrack(
        src,
        info.audio_codec,
        start=float(info.time(start_frame)) if start_frame else 0.0,
        duration=None if whole else float(info.time(end) - info.time(start_frame)),
    )


class _Board:
    """One output frame from an input frame: its panels filtered and tiled."""

    def __init__(
        self, params: VideoParams, info: VideoInfo, painter: Callable[..., Any] | None
    ) -> None:
        self.params = params
        self.info = info
        self.painter = painter
        self.panels = params.panel_filters()
        self.geometry = plan_board(params.layout, info.width, info.height)

    def __call__(self, frame: np.ndarray, boxes: list[Box]) -> np.ndarray:
        info, params, painter = self.info, self.params, self.painter
        if frame.shape[:2] != (info.height, info.width):
            frame = cv2.resize(frame, (info.width, info.height))
        return compose_board(
            [
                painter(frame)
                if name == PAINTING and painter and params.painting_frames
                else apply_filter(
                    frame, boxes, name, mask=params.mask, padding=params.padding, painter=painter
                )
                for name in self.panels
            ],
            self.geometry,
        )


@dataclass
class _Run:
    """A run's reporting (progress, cancellation, face boxes handed over) and its counts."""

    start_frame: int
    total: int
    on_progress: Callable[[int, int], None] | None
    should_stop: Callable[[], bool] | None
    on_faces: Callable[[int, list[list[Box]]], None] | None
    faces: list[list[Box]] = field(default_factory=list)  # not yet handed to `on_faces`
    done: int = 0
    tracked: int = 0
    with_faces: int = 0
    searched: int = 0
    lost: int = 0
    first_lost: int | None = None

    def checkpoint(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise JobCancelled(f"cancelled after {self.done} of {self.total} frames")
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)

    def hand_over(self) -> None:
        if self.on_faces is not None and self.faces:
            self.on_faces(self.start_frame + self.done - len(self.faces), self.faces.copy())
            self.faces.clear()

    def add(self, index: int, boxes: list[Box], bridged: int, runs: int, gone: int) -> None:
        """Count frame `index` written; report every `REPORT_EVERY` frames."""
        self.faces.append(boxes)
        self.done += 1
        self.tracked += bridged
        self.with_faces += bool(boxes)
        self.searched += runs
        self.lost += gone
        if gone and self.first_lost is None:
            self.first_lost = index
        if self.done % REPORT_EVERY == 0 and self.done < self.total:
            self.hand_over()
            self.checkpoint()

    def stats(self, info: VideoInfo, geometry: BoardGeometry, seconds: float) -> VideoStats:
        return VideoStats(
            frames=self.done,
            fps=info.fps,
            width=geometry.width,
            height=geometry.height,
            faces=self.faces,
            seconds=seconds,
            duration=float(info.time(self.start_frame + self.done) - info.time(self.start_frame)),
            start=float(info.time(self.start_frame)),
            tracked=self.tracked,
            with_faces=self.with_faces,
            searched=self.searched,
            lost=self.lost,
            first_lost=self.first_lost,
        )
