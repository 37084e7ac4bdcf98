"""process_video end to end on real and synthetic clips: frames, rate, audio, boards, segments."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from atelier.errors import InputError, JobCancelled
from atelier.schemas import VideoParams
from tests.video.media import FaceVideo, Streams, ffmpeg, frame_times, sample_aspect
from workers.video.detect import Box, iou
from workers.video.encode import join_segments
from workers.video.filters import pad_box
from workers.video.pipeline import REPORT_EVERY, VideoStats, plan_segments, process_video
from workers.video.probe import VideoInfo, probe_video

Decode = Callable[[Path], list[np.ndarray]]
CHEAP = "haar"
"""The detector of tests about frames, sound and progress rather than faces: the cheapest one."""
CODEC_TOLERANCE = 3.0
"""Mean absolute difference two H.264 generations (crf 18) of the same picture stay under: the
frames of a re-encoded clip, or of one clip encoded whole and in two runs (x264's look-ahead
decides differently near a segment's end)."""


def found_share(stats: VideoStats, truth: list[Box]) -> float:
    """Share of frames where one of the boxes covers the true face."""
    hits = [
        any(iou(box, face) > 0.4 for box in boxes)
        for boxes, face in zip(stats.faces, truth, strict=True)
    ]
    return sum(hits) / len(hits)


def roi_masks(
    shape: tuple, boxes: list[Box], padding: float, margin: int
) -> tuple[np.ndarray, np.ndarray]:
    """(inside the ROIs, away from them by more than `margin` px: codec blocks straddle edges)."""
    inside = np.zeros(shape[:2], bool)
    near = np.zeros(shape[:2], bool)
    height, width = shape[:2]
    for box in boxes:
        x0, y0, x1, y1 = pad_box(box, padding, width, height)
        inside[y0:y1, x0:x1] = True
        near[max(0, y0 - margin) : y1 + margin, max(0, x0 - margin) : x1 + margin] = True
    return inside, ~near


def test_chaplin_clip_keeps_frames_rate_and_audio(
    chaplin_clip: Path, tmp_path: Path, streams: Callable[[Path], Streams]
) -> None:
    out = tmp_path / "out.mp4"
    stats = process_video(chaplin_clip, out, VideoParams(filter="blur"))
    info = probe_video(out)
    assert stats.frames == info.frame_count == 50 == len(stats.faces)
    assert info.fps == stats.fps == 25 and (info.width, info.height) == (320, 180)
    source, result = streams(chaplin_clip), streams(out)
    assert result.audio_codec == "mp3"
    assert result.audio_seconds == pytest.approx(source.audio_seconds, abs=0.03)
    assert result.audio_seconds == pytest.approx(result.video_seconds, abs=0.1)


def test_pixels_change_inside_faces_only(
    face_video: FaceVideo, tmp_path: Path, decode: Decode
) -> None:
    params = VideoParams(filter="pixelate")
    stats = process_video(face_video.path, tmp_path / "out.mp4", params)
    source, result = decode(face_video.path), decode(tmp_path / "out.mp4")
    assert len(result) == len(source) == stats.frames
    checked = 0
    for boxes, before, after in zip(stats.faces, source, result, strict=True):
        if not boxes:
            continue
        inside, away = roi_masks(before.shape, boxes, params.padding, margin=8)
        diff = np.abs(after.astype(int) - before)
        assert diff[away].mean() < CODEC_TOLERANCE
        assert diff[inside].mean() > 5 * CODEC_TOLERANCE
        checked += 1
    assert checked >= 0.8 * stats.frames


def test_frame_times_and_pixel_shape_are_kept(
    uneven_face_video: FaceVideo, tmp_path: Path, streams: Callable[[Path], Streams]
) -> None:
    """A variable-frame-rate input keeps every frame's time (re-timed to a constant rate, the
    frames after the pause would come 0.4 s early and the audio would drift away from them), and
    its 128:117 pixels stay 128:117 (square, the picture would play 9% narrow)."""
    source = uneven_face_video.path
    out = tmp_path / "out.mp4"
    stats = process_video(source, out, VideoParams(filter="blur", detect_every=5))
    assert stats.frames == 40 and stats.duration == pytest.approx(1.9, abs=0.01)
    assert stats.start == pytest.approx(0.25, abs=0.001)
    assert frame_times(out) == pytest.approx(frame_times(source), abs=1e-6)
    assert sample_aspect(out) == "128:117"
    assert streams(out).audio_seconds == pytest.approx(streams(source).audio_seconds, abs=0.03)


def test_rotated_input_comes_out_upright_with_its_pixel_shape(
    uneven_face_video: FaceVideo, tmp_path: Path, decode: Decode
) -> None:
    """Rotation metadata is applied (the frames are the upright ones OpenCV decodes) and the
    pixel shape turns with the picture: 128:117 stored, 117:128 upright."""
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-display_rotation", "90", "-i", str(uneven_face_video.path), "-c", "copy", str(rotated))
    out = tmp_path / "out.mp4"
    stats = process_video(rotated, out, VideoParams(keep_audio=False), end_frame=6)
    assert (stats.width, stats.height) == (240, 320) and sample_aspect(out) == "117:128"
    upright, result = decode(rotated)[:6], decode(out)
    assert len(result) == 6 and upright[0].shape == result[0].shape == (320, 240, 3)
    for boxes, before, after in zip(stats.faces, upright, result, strict=True):
        _, away = roi_masks(before.shape, boxes, 0.15, margin=8)
        assert np.abs(after.astype(int) - before)[away].mean() < CODEC_TOLERANCE


@pytest.mark.parametrize(("every", "share"), [(1, 0.8), (5, 0.8)])
def test_a_moving_face_is_found_in_most_frames(
    face_video: FaceVideo, tmp_path: Path, every: int, share: float
) -> None:
    params = VideoParams(filter="solid", detect_every=every, keep_audio=False)
    stats = process_video(face_video.path, tmp_path / "out.mp4", params)
    assert found_share(stats, face_video.truth) >= share


@pytest.mark.parametrize(
    ("layout", "size"),
    [("1x2", (640, 180)), ("2x2", (640, 360)), ("1x3", (960, 180)), ("3x1", (320, 540))],
)
def test_boards_have_the_right_size(
    chaplin_clip: Path, tmp_path: Path, layout: str, size: tuple[int, int]
) -> None:
    out = tmp_path / f"{layout}.mp4"
    stats = process_video(
        chaplin_clip, out, VideoParams(layout=layout, detector=CHEAP), end_frame=8
    )
    info = probe_video(out)
    assert (stats.width, stats.height) == (info.width, info.height) == size
    assert info.frame_count == stats.frames == 8


def test_board_panels_show_original_and_filters(
    face_video: FaceVideo, tmp_path: Path, decode: Decode
) -> None:
    params = VideoParams(layout="1x2", filter="solid", keep_audio=False)
    stats = process_video(face_video.path, tmp_path / "board.mp4", params, end_frame=5)
    source, board = decode(face_video.path)[:5], decode(tmp_path / "board.mp4")
    for boxes, before, after in zip(stats.faces, source, board, strict=True):
        left, right = after[:, :320].astype(int), after[:, 320:].astype(int)
        assert np.abs(left - before).mean() < CODEC_TOLERANCE
        inside, _ = roi_masks(before.shape, boxes, params.padding, margin=0)
        assert right[inside].mean() < 10


@pytest.mark.parametrize(
    ("clip", "every", "ranges"),
    [
        pytest.param("face_video", 5, [(0, 17), (17, 40)], id="synthetic"),
        pytest.param("uneven_face_video", 5, [(0, 13), (13, 29), (29, 40)], id="uneven"),
        pytest.param(
            "chaplin_faces", 4, [(0, 10), (10, 21), (21, 30)], marks=pytest.mark.slow, id="chaplin"
        ),
    ],
)
def test_segments_joined_equal_the_whole_run(
    request: pytest.FixtureRequest,
    clip: str,
    every: int,
    ranges: list[tuple[int, int]],
    tmp_path: Path,
    decode: Decode,
    streams: Callable[[Path], Streams],
) -> None:
    """Ranges that start off the keyframe grid, and a video whose last frame is off it too, still
    give the boxes of every frame and the frames of the whole-video run: a range that placed its
    keyframes from its own first frame, or detected on its own last frame, would differ here (on
    the real clip the cascade misses the face on some frames, so a detection moved shows). On the
    uneven clip, ranges start between video keyframes (decoding starts at the keyframe before),
    and the joined file shows every frame at its input time."""
    fixture = request.getfixturevalue(clip)
    source = fixture.path if isinstance(fixture, FaceVideo) else fixture
    total = ranges[-1][1]
    assert all(start % every for start, _ in ranges[1:]) and (total - 1) % every
    params = VideoParams(filter="blur", detect_every=every)
    whole = process_video(source, tmp_path / "whole.mp4", params)
    assert whole.frames == total and sum(map(bool, whole.faces)) >= 0.8 * total
    parts, spans, faces = [], [], []
    for i, (start, end) in enumerate(ranges):
        part = tmp_path / f"part{i}.mp4"
        stats = process_video(
            source, part, params, start_frame=start, end_frame=end, with_audio=False
        )
        assert stats.frames == end - start and streams(part).audio_seconds is None
        parts.append(part)
        spans.append(stats.duration)
        faces += stats.faces
    differ = [i for i, (a, b) in enumerate(zip(whole.faces, faces, strict=True)) if a != b]
    assert differ == [], f"frames whose boxes differ from the whole run: {differ}"
    joined = join_segments(
        parts, source, tmp_path / "joined.mp4", params.keep_audio, spans, delay=whole.start
    )
    a, b = decode(tmp_path / "whole.mp4"), decode(joined)
    assert len(a) == len(b) == total
    for boxes, x, y in zip(whole.faces, a, b, strict=True):
        diff = np.abs(x.astype(int) - y)
        assert diff.mean() < CODEC_TOLERANCE
        inside, _ = roi_masks(x.shape, boxes, params.padding, margin=0)
        assert not inside.any() or diff[inside].mean() < CODEC_TOLERANCE
    assert streams(joined).audio_seconds == streams(tmp_path / "whole.mp4").audio_seconds
    assert frame_times(joined) == pytest.approx(frame_times(source), abs=1e-6)


def test_keep_audio_false_writes_no_audio(
    chaplin_clip: Path, tmp_path: Path, streams: Callable[[Path], Streams]
) -> None:
    out = tmp_path / "silent.mp4"
    process_video(chaplin_clip, out, VideoParams(keep_audio=False, detector=CHEAP), end_frame=5)
    assert streams(out).audio_seconds is None and streams(out).video_seconds is not None


def test_a_range_with_audio_gets_that_range_of_sound(
    chaplin_clip: Path, tmp_path: Path, streams: Callable[[Path], Streams]
) -> None:
    out = tmp_path / "range.mp4"
    stats = process_video(
        chaplin_clip, out, VideoParams(detector=CHEAP), start_frame=10, end_frame=35
    )
    assert stats.frames == 25
    assert streams(out).audio_seconds == pytest.approx(1.0, abs=0.06)


def test_progress_is_reported_and_cancel_stops(chaplin_clip: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    process_video(
        chaplin_clip,
        tmp_path / "p.mp4",
        VideoParams(detector=CHEAP),
        end_frame=25,
        on_progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[0] == (0, 25) and seen[-1] == (25, 25)
    assert [d for d, _ in seen[1:-1]] == list(range(REPORT_EVERY, 25, REPORT_EVERY))

    asked = 0

    def stop_on_second_check() -> bool:
        nonlocal asked
        asked += 1
        return asked > 1

    with pytest.raises(JobCancelled, match=f"after {REPORT_EVERY} of 50 frames"):
        process_video(
            chaplin_clip,
            tmp_path / "c.mp4",
            VideoParams(detector=CHEAP),
            should_stop=stop_on_second_check,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.mp4"]


def test_bad_inputs_fail_before_any_output(tmp_path: Path, chaplin_clip: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("not a film")
    with pytest.raises(InputError, match="not a video"):
        process_video(text, tmp_path / "out.mp4", VideoParams())
    with pytest.raises(ValueError, match="empty"):
        process_video(chaplin_clip, tmp_path / "out.mp4", VideoParams(), start_frame=50)
    with pytest.raises(InputError, match="YuNet"):
        process_video(chaplin_clip, tmp_path / "out.mp4", VideoParams(detector="dnn"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.mp4"]


def _info(frames: int, fps: int = 25, pts: tuple[int, ...] | None = None) -> VideoInfo:
    """`frames` frames at `fps`, or shown at `pts` (in 1/fps s; the last one lasts 1/fps s)."""
    pts = pts or tuple(range(frames))
    duration = (pts[-1] + 1) / fps
    tick = Fraction(1, fps)
    return VideoInfo(640, 360, fps, frames, duration, 0, True, True, "aac", tick, pts, pts[-1] + 1)


def test_plan_segments() -> None:
    assert plan_segments(_info(241), 0) == [(0, 241)]
    assert plan_segments(_info(241), 4) == [(0, 100), (100, 241)]
    assert plan_segments(_info(241), 2) == [(0, 50), (50, 100), (100, 150), (150, 200), (200, 241)]
    assert plan_segments(_info(260), 4) == [(0, 100), (100, 200), (200, 260)]
    assert plan_segments(_info(30), 10) == [(0, 30)]
    # At a varying rate, ranges last equal times: 4 s at 50 fps, then 4 s at 10 fps.
    varying = (*range(0, 200), *range(200, 400, 5))
    planned = plan_segments(_info(240, 50, varying), 2)
    assert planned == [(0, 100), (100, 200), (200, 220), (220, 240)]
