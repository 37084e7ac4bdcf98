"""ROI filters: every filter changes the face region and not one pixel outside it."""

from __future__ import annotations

import numpy as np
import pytest

from workers.video.detect import Box
from workers.video.filters import FILTER_NAMES, ORIGINAL, apply_filter, pad_box

FACES = [Box(20, 30, 40, 50), Box(110, 60, 30, 30)]


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    """Noise over a gradient: every filter has detail to flatten, edges to find, colour to map."""
    rng = np.random.default_rng(7)
    xs, ys = np.meshgrid(np.arange(160), np.arange(120))
    base = np.stack([xs, ys, (xs + ys) // 2], axis=-1).astype(np.int16) + 40
    noise = rng.integers(-40, 40, size=base.shape)
    return (base + noise).clip(0, 255).astype(np.uint8)


def roi_mask(shape: tuple, boxes: list[Box], padding: float) -> np.ndarray:
    mask = np.zeros(shape[:2], bool)
    for box in boxes:
        x0, y0, x1, y1 = pad_box(box, padding, shape[1], shape[0])
        mask[y0:y1, x0:x1] = True
    return mask


@pytest.mark.parametrize("mask", ["box", "ellipse"])
@pytest.mark.parametrize("name", [n for n in FILTER_NAMES if n != ORIGINAL])
def test_filter_changes_the_roi_only(frame: np.ndarray, name: str, mask: str) -> None:
    before = frame.copy()
    out = apply_filter(frame, FACES, name, mask=mask, padding=0.2)
    assert np.array_equal(frame, before), "the input frame must not be modified"
    assert out.shape == frame.shape and out.dtype == np.uint8
    inside = roi_mask(frame.shape, FACES, 0.2)
    assert np.array_equal(out[~inside], frame[~inside])
    for box in FACES:
        x0, y0, x1, y1 = pad_box(box, 0.2, frame.shape[1], frame.shape[0])
        assert not np.array_equal(out[y0:y1, x0:x1], frame[y0:y1, x0:x1]), box


def test_ellipse_mask_leaves_the_roi_corners(frame: np.ndarray) -> None:
    out = apply_filter(frame, [FACES[0]], "solid", mask="ellipse", padding=0)
    x, y, w, h = FACES[0]
    assert np.array_equal(out[y, x], frame[y, x])
    assert np.array_equal(out[y + h - 1, x + w - 1], frame[y + h - 1, x + w - 1])
    assert not out[y + h // 2, x + w // 2].any()


def test_original_is_the_frame_itself(frame: np.ndarray) -> None:
    assert apply_filter(frame, FACES, ORIGINAL) is frame


def test_no_faces_gives_an_identical_frame(frame: np.ndarray) -> None:
    assert np.array_equal(apply_filter(frame, [], "blur"), frame)


def test_faces_at_the_frame_edge_are_clipped(frame: np.ndarray) -> None:
    edge = [Box(0, 0, 30, 30), Box(140, 100, 20, 20)]
    out = apply_filter(frame, edge, "pixelate", padding=0.5)
    inside = roi_mask(frame.shape, edge, 0.5)
    assert np.array_equal(out[~inside], frame[~inside])
    assert not np.array_equal(out[inside], frame[inside])


def test_pad_box_grows_around_the_centre_and_clips() -> None:
    assert pad_box(Box(40, 40, 20, 10), 0.5, 200, 100) == (35, 38, 65, 52)
    assert pad_box(Box(0, 90, 20, 10), 1.0, 200, 100) == (0, 85, 30, 100)


def test_unknown_names_are_refused(frame: np.ndarray) -> None:
    with pytest.raises(ValueError, match="unknown filter"):
        apply_filter(frame, FACES, "sepia")
    with pytest.raises(ValueError, match="unknown mask"):
        apply_filter(frame, FACES, "blur", mask="circle")
