"""FrameReader: a range of frames decoded from the keyframe before it, not from frame 0."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.video.media import FaceVideo
from workers.video.frames import FrameReader
from workers.video.probe import probe_video

Decode = Callable[[Path], list[np.ndarray]]


@pytest.mark.parametrize(("first", "last"), [(0, 39), (13, 13), (24, 30), (29, 39)])
def test_a_range_gives_exactly_its_frames(
    uneven_face_video: FaceVideo, decode: Decode, first: int, last: int
) -> None:
    """Ranges starting on a keyframe, between keyframes and at frame 0, on a clip with uneven
    frame times: the frames OpenCV decodes from the start, pixel for pixel, with their indexes."""
    path = uneven_face_video.path
    got = list(FrameReader(path, probe_video(path), first, last))
    assert [index for index, _ in got] == list(range(first, last + 1))
    everything = decode(path)
    assert all(np.array_equal(frame, everything[i]) for i, frame in got)


@pytest.mark.parametrize("first", [13, 24, 29, 32])
def test_decoding_starts_at_a_keyframe_before_the_range(
    uneven_face_video: FaceVideo, first: int
) -> None:
    """The clip has a keyframe every 8 frames (0, 8, ..., 32). Reading from `first` to the end,
    ffmpeg decodes from the keyframe before `first`, or the one before that (it seeks by
    decoding time, a little early when frames are reordered): never from frame 0."""
    path = uneven_face_video.path
    reader = FrameReader(path, probe_video(path), first, 39)
    assert sum(1 for _ in reader) == 40 - first
    keyframe = first - first % 8
    assert 40 - keyframe <= reader.decoded <= 40 - (keyframe - 8)


def _children() -> set[int]:
    """Processes this test process has started and not yet reaped (Linux /proc)."""
    own = str(os.getpid())
    return {
        int(stat.parent.name) for stat in Path("/proc").glob("[0-9]*/stat") if _parent(stat) == own
    }


def _parent(stat: Path) -> str | None:
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[1]
    except (OSError, IndexError):
        return None


def test_stopping_early_ends_ffmpeg(uneven_face_video: FaceVideo) -> None:
    """A consumer that stops reading (a cancelled job) leaves no ffmpeg behind."""
    path = uneven_face_video.path
    before = _children()
    reader = FrameReader(path, probe_video(path), 0, 39)
    frames = iter(reader)
    assert next(frames)[0] == 0
    assert len(_children() - before) == 1
    frames.close()
    assert _children() == before and reader.decoded is None
