"""Small faces walking through the picture stay hidden in every frame, pixel by pixel.

The clip is made by `tests.support.moving` (the face photo composited on a street photo, every
face's box known by construction): 320x240, faces 20-32 px tall at 4-8 px a frame, one in view
at frame 0 and walking fast, others entering and leaving at the left, right and bottom edges,
two of them crossing. A face counts as visible when more than 15% of its inner box (eyes to
chin) is left unchanged by the `solid` filter (`tests.support.faces.visible_faces`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from atelier.schemas import VideoParams
from tests.support.faces import visible_faces
from tests.support.moving import Scene, Walker, make_clip
from workers.video.detect import Box
from workers.video.pipeline import process_video

Decode = Callable[[Path], list[np.ndarray]]

SCENE = Scene(
    "walkers",
    "tubingen.jpg",
    320,
    240,
    36,
    (
        Walker(24, 60, 150, 8, 0),
        Walker(22, -14, 90, 6, 0.5, start=4, mirror=True, tint=(0.85, 0.95, 1.1)),
        Walker(32, 340, 190, -5, 0, start=10, tint=(1.1, 1.0, 0.9)),
        Walker(20, 150, 254, 2, -6, start=14, mirror=True),
    ),
)


@pytest.fixture(scope="module")
def walkers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, list[Box]]]:
    return make_clip(SCENE, tmp_path_factory.mktemp("walkers"))


@pytest.mark.parametrize("every", [2, 5], ids=["default", "every-5"])
def test_no_walking_face_shows_in_any_frame(
    walkers: tuple[Path, dict[int, list[Box]]], tmp_path: Path, decode: Decode, every: int
) -> None:
    """Before detection on demand and masks grown with speed, the default left faces entering at
    an edge uncovered for a few frames, and `--detect-every 5` lost faces that moved about a face
    width between detections."""
    clip, labels = walkers
    params = VideoParams(filter="solid", detect_every=every, keep_audio=False)
    assert params.detect_every == every and VideoParams().detect_every == 2
    out = tmp_path / "out.mp4"
    stats = process_video(clip, out, params)
    visible, seen = visible_faces(decode(clip), decode(out), labels)
    assert seen >= 80 and stats.frames == SCENE.frames
    assert visible == 0, f"{visible} of {seen} face-frames visible"
