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
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2

from atelier.errors import InputError, JobCancelled
from atelier.schemas import VideoParams
from workers.video.detect import Box, make_detector
from workers.video.encode import AudioTrack, FfmpegWriter
from workers.video.filters import PAINTING, apply_filter
from workers.video.frames import FrameReader
from workers.video.layout import compose_board, plan_board
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
    end = info.frame_count if end_frame is None else min(end_frame, info.frame_count)
    if not 0 <= start_frame < end:
        raise ValueError(f"frame range [{start_frame}, {end}) of {info.frame_count} is empty")
    total = end - start_frame
    every = params.detect_every
    tracking = TrackOptions.for_rate(info.fps, every)
    reach = tracking.reach(every)
    first_key = max(0, start_frame - reach) // every * every
    next_key = -(-(end - 1 + reach) // every) * every

    detector = make_detector(params.detector, model_path, params.profile)
    panels = params.panel_filters()
    painter = None
    if PAINTING in panels:
        if style_path is None:
            raise InputError("the painting filter needs a painting (`style`)")
        from workers.video.painting import Painter

        painter = Painter(style_path)
    geometry = plan_board(params.layout, info.width, info.height)
    audio = None
    if with_audio and params.keep_audio and info.has_audio:
        whole = start_frame == 0 and end == info.frame_count
        audio = AudioTrack(
            src,
            info.audio_codec,
            start=float(info.time(start_frame)) if start_frame else 0.0,
            duration=None if whole else float(info.time(end) - info.time(start_frame)),
        )
    # Frames keep the input's times, counted from the range's first frame. A finished file from
    # frame 0 starts its video when the input's does (after its sound, in some files); a
    # segment starts at 0, and joining puts it in place.
    origin = info.pts[start_frame]
    delay = info.time(0) if with_audio and start_frame == 0 else Fraction(0)
    shown = (*info.pts, info.end_pts)

    def checkpoint(done: int) -> None:
        if should_stop is not None and should_stop():
            raise JobCancelled(f"cancelled after {done} of {total} frames")
        if on_progress is not None:
            on_progress(done, total)

    checkpoint(0)
    faces: list[list[Box]] = []  # boxes not yet handed to `on_faces` (all of them without it)
    done = tracked = with_faces = searched = lost = 0
    first_lost: int | None = None

    def hand_over() -> None:
        if on_faces is not None and faces:
            on_faces(start_frame + done - len(faces), faces.copy())
            faces.clear()

    writer = FfmpegWriter(
        dst, geometry.width, geometry.height, info.time_base, sar=info.sar, delay=delay, audio=audio
    )
    frames = iter(FrameReader(src, info, first_key, next_key))
    with writer, contextlib.closing(frames):
        for index, frame, boxes, bridged, runs, gone in track_faces(
            frames, detector, every, tracking
        ):
            if index < start_frame:
                continue
            if index >= end:
                break
            if frame.shape[:2] != (info.height, info.width):
                frame = cv2.resize(frame, (info.width, info.height))
            board = compose_board(
                [
                    painter(frame)
                    if name == PAINTING and painter and params.painting_frames
                    else apply_filter(
                        frame,
                        boxes,
                        name,
                        mask=params.mask,
                        padding=params.padding,
                        painter=painter,
                    )
                    for name in panels
                ],
                geometry,
            )
            writer.write(board, shown[index] - origin, shown[index + 1] - shown[index])
            faces.append(boxes)
            done += 1
            tracked += bridged
            with_faces += bool(boxes)
            searched += runs
            lost += gone
            if gone and first_lost is None:
                first_lost = index
            if done % REPORT_EVERY == 0 and done < total:
                hand_over()
                checkpoint(done)
        if not done:
            raise InputError(f"no decodable frames in {src.name} from frame {start_frame}")
        hand_over()
        checkpoint(done)
    return VideoStats(
        frames=done,
        fps=info.fps,
        width=geometry.width,
        height=geometry.height,
        faces=faces,
        seconds=time.perf_counter() - started,
        duration=float(info.time(start_frame + done) - info.time(start_frame)),
        start=float(info.time(start_frame)),
        tracked=tracked,
        with_faces=with_faces,
        searched=searched,
        lost=lost,
        first_lost=first_lost,
    )
