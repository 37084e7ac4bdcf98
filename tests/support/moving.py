"""Clips of small faces moving at walking speed, with every face's box known by construction.

The face photo (tests/data/faces/grace_hopper.jpg) is cut out as a head (a feathered ellipse from
the cap to below the chin), scaled so the face is 20-44 px tall, and pasted onto a still street
or landscape photo (tests/data/content) along a straight path with a walking bob: 4-8 px a frame,
about one face width every 4-8 frames. Faces enter and leave at the frame's edges, several are
in view at once, and one is in view at frame 0. Copies are told apart by a mirror image and a
tint, as different people would be.

A face's box is the square around the face's centre, brow to chin (200 px in the photo, centred
at (264, 222), as in labels/closeup.json), moved by the same scale and shift as the photo; its
*inner box* (eyes to chin, `inner_box`) is the part a leak check looks at. Boxes may reach past
the frame's edges (a face entering); scorers clip them.

`python -m tests.support.moving` writes the labelled clips (`CLIPS`, which bench/faces.py
measures) to tests/data/video and their labels to tests/data/labels; tests build smaller clips
with `make_clip`.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from workers.video.detect import Box
from workers.video.ffmpeg import ffmpeg_exe

DATA = Path(__file__).resolve().parents[1] / "data"
PHOTO = DATA / "faces" / "grace_hopper.jpg"
FACE_CENTRE, FACE_SIDE = (264.0, 222.0), 200.0
"""The face in the photo: the centre and side of the square from brow to chin."""
HEAD = ((262, 200), (118, 178))
"""The head cut from the photo: an ellipse (centre, half-axes) from the cap's top to the neck."""
INNER = (-0.36, -0.25, 0.72, 0.75)
"""The inner box (outer eye corners, top of the glasses to the chin) as shares of the face box,
from the face box's centre: x, y offsets, width, height."""


@dataclass(frozen=True)
class Walker:
    """One face: its size (brow to chin, px), where its centre is at frame `start`, its speed
    (px per frame), the frames it is drawn on, and how it looks (mirrored, tinted)."""

    size: float
    x: float
    y: float
    vx: float
    vy: float
    start: int = 0
    end: int = 10_000
    mirror: bool = False
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    bob: float = 1.5

    def centre(self, frame: int) -> tuple[float, float]:
        """The face's centre at `frame`: a straight walk with a step's bob (a period of 10
        frames, 0.4 s at 25 fps)."""
        t = frame - self.start
        return self.x + self.vx * t, self.y + self.vy * t + self.bob * math.sin(
            2 * math.pi * t / 10
        )


@dataclass(frozen=True)
class Scene:
    """A clip: its background photo, frame size, length and faces."""

    name: str
    background: str
    width: int
    height: int
    frames: int
    walkers: tuple[Walker, ...]
    fps: int = 25


CLIPS = (
    Scene(
        "street",
        "tubingen.jpg",
        640,
        360,
        150,
        (
            Walker(36, 230, 230, 5, 0),
            Walker(26, -20, 180, 7, -0.5, start=8, mirror=True, tint=(0.8, 0.9, 1.15)),
            Walker(44, 670, 305, -4, 0, start=20, tint=(1.1, 1.0, 0.85)),
            Walker(20, 660, 120, -8, 0.5, start=45, mirror=True),
            Walker(30, -25, 300, 6, -1.0, start=70, tint=(0.9, 0.9, 0.9)),
            Walker(24, 380, -20, 1.5, 5, start=100, tint=(1.15, 0.95, 0.9)),
        ),
    ),
    Scene(
        "bridge",
        "golden_gate.jpg",
        320,
        240,
        100,
        (
            Walker(28, 60, 150, 6, 0),
            Walker(22, 345, 110, -5, 0, start=12, mirror=True, tint=(0.85, 0.95, 1.1)),
            Walker(32, -25, 190, 4, -0.5, start=40, tint=(1.1, 1.0, 0.9)),
            Walker(20, 200, 255, -2, -6, start=60, mirror=True),
        ),
    ),
)


def face_box(walker: Walker, frame: int) -> Box:
    """The face's square, brow to chin, at `frame` (unclipped; it may reach past the edges)."""
    cx, cy = walker.centre(frame)
    half = walker.size / 2
    return Box(round(cx - half), round(cy - half), round(walker.size), round(walker.size))


def inner_box(face: Box) -> Box:
    """The inner box (eyes to chin) of a face box: what must not be seen."""
    cx, cy = face.x + face.w / 2, face.y + face.h / 2
    dx, dy, w, h = INNER
    return Box(
        round(cx + dx * face.w), round(cy + dy * face.h), round(w * face.w), round(h * face.h)
    )


def _cutout(photo: np.ndarray, walker: Walker) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The walker's head at its size (area-averaged, as a camera would see it): its pixels,
    tinted and mirrored as the walker looks, a feathered alpha (0..1), and where the face's
    centre lies in them."""
    alpha = np.zeros(photo.shape[:2], np.float32)
    cv2.ellipse(alpha, HEAD[0], HEAD[1], 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 6)
    scale = walker.size / FACE_SIDE
    pixels = photo.astype(np.float32) * np.array(walker.tint, np.float32)
    small = [
        cv2.resize(layer, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        for layer in (pixels, alpha)
    ]
    fx = (FACE_CENTRE[0] + 0.5) * scale - 0.5
    fy = (FACE_CENTRE[1] + 0.5) * scale - 0.5
    if walker.mirror:
        small = [cv2.flip(layer, 1) for layer in small]
        fx = small[0].shape[1] - 1 - fx
    return small[0], small[1], fx, fy


def _paste(
    frame: np.ndarray, cutout: tuple[np.ndarray, np.ndarray, float, float], centre: tuple
) -> None:
    """Draw a head cut-out on `frame` (in place), its face's centre at `centre`."""
    pixels, alpha, fx, fy = cutout
    shift = np.array([[1, 0, centre[0] - fx], [0, 1, centre[1] - fy]])
    size = (frame.shape[1], frame.shape[0])
    warped = cv2.warpAffine(pixels, shift, size)
    weight = cv2.warpAffine(alpha, shift, size)[..., None]
    mixed = frame.astype(np.float32) * (1 - weight) + warped * weight
    frame[:] = mixed.clip(0, 255).astype(np.uint8)


def background(scene: Scene) -> np.ndarray:
    """The scene's photo, scaled to cover the frame and cropped at its centre."""
    photo = cv2.imread(str(DATA / "content" / scene.background))
    scale = max(scene.width / photo.shape[1], scene.height / photo.shape[0])
    photo = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    top = (photo.shape[0] - scene.height) // 2
    left = (photo.shape[1] - scene.width) // 2
    return photo[top : top + scene.height, left : left + scene.width].copy()


def visible(box: Box, width: int, height: int) -> bool:
    """Whether any of the box lies inside a `width` x `height` frame."""
    return box.x < width and box.y < height and box.x + box.w > 0 and box.y + box.h > 0


def render(scene: Scene) -> tuple[list[np.ndarray], dict[int, list[Box]]]:
    """Every frame of the scene and, per frame, the face boxes of the faces in view."""
    photo = cv2.imread(str(PHOTO))
    cutouts = [_cutout(photo, walker) for walker in scene.walkers]
    still = background(scene)
    frames, labels = [], {}
    for i in range(scene.frames):
        frame = still.copy()
        boxes = []
        for walker, cutout in zip(scene.walkers, cutouts, strict=True):
            if not walker.start <= i < walker.end:
                continue
            box = face_box(walker, i)
            if visible(box, scene.width, scene.height):
                _paste(frame, cutout, walker.centre(i))
                boxes.append(box)
        frames.append(frame)
        labels[i] = boxes
    return frames, labels


def encode(frames: list[np.ndarray], path: Path, fps: int, crf: int = 20) -> Path:
    """H.264 (yuv420p) with the bundled ffmpeg; a still background keeps the file small."""
    height, width = frames[0].shape[:2]
    subprocess.run(
        [
            *(ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24"),
            *("-video_size", f"{width}x{height}", "-framerate", str(fps), "-i", "pipe:0"),
            *("-c:v", "libx264", "-preset", "slow", "-crf", str(crf), "-pix_fmt", "yuv420p"),
            str(path),
        ],
        input=b"".join(frame.tobytes() for frame in frames),
        check=True,
    )
    return path


def make_clip(scene: Scene, folder: Path) -> tuple[Path, dict[int, list[Box]]]:
    """Render and encode `scene` into `folder`; the clip's path and its labels."""
    frames, labels = render(scene)
    return encode(frames, folder / f"{scene.name}.mp4", scene.fps), labels


def write_labels(labels: dict[int, list[Box]], path: Path) -> None:
    """Labels as JSON, frame index -> [[x, y, w, h], ...] (the format of labels/closeup.json)."""
    raw = {str(i): [list(box) for box in boxes] for i, boxes in labels.items()}
    path.write_text(json.dumps(raw, separators=(",", ":")) + "\n")


def main() -> None:
    for scene in CLIPS:
        _, labels = make_clip(scene, DATA / "video")
        write_labels(labels, DATA / "labels" / f"{scene.name}.json")
        faces = sum(map(len, labels.values()))
        print(f"{scene.name}: {scene.frames} frames, {faces} face-frames")


if __name__ == "__main__":
    main()
