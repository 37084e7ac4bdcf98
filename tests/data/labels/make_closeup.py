"""Make `video/closeup.mp4` and `labels/closeup.json` from the bundled photos (run from the
repository root: `PYTHONPATH=. python tests/data/labels/make_closeup.py`; it encodes with the
bundled ffmpeg).

Grace Hopper's portrait (`faces/grace_hopper.jpg`) is turned, zoomed and panned over a slowly
panning crop of `content/tubingen.jpg`, 240x180 at 25 fps, 90 frames, and in two stretches a grey
bar hides part of her face. Every frame's label is the square around the face's centre whose side
is the face's size at that frame's zoom: the face (brow to chin, 200 px in the photo, centred at
(264, 222)) follows the same affine map as the photo, and a square around a turning disc stays
the same square, so the label holds whatever the tilt.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import cv2
import numpy as np

from workers.video.ffmpeg import ffmpeg_exe

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT, FRAMES = 240, 180, 90
FACE_CENTRE, FACE_SIDE = (264.0, 222.0), 200.0


def pose(i: int) -> tuple[float, float, float, float]:
    """Tilt (degrees), zoom (face side in px), and the face centre for frame i."""
    t = i / (FRAMES - 1)
    angle = 28 * math.sin(2 * math.pi * t * 1.5)
    side = 44 + 60 * (0.5 - 0.5 * math.cos(2 * math.pi * t))
    cx = WIDTH / 2 + 60 * math.sin(2 * math.pi * t)
    cy = HEIGHT / 2 + 20 * math.sin(4 * math.pi * t)
    return angle, side, cx, cy


def occluded(i: int) -> bool:
    return 25 <= i < 35 or 60 <= i < 70


def main() -> None:
    photo = cv2.imread(str(ROOT / "faces" / "grace_hopper.jpg"))
    scene = cv2.imread(str(ROOT / "content" / "tubingen.jpg"))
    scene = cv2.resize(scene, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    frames, labels = [], {}
    for i in range(FRAMES):
        angle, side, cx, cy = pose(i)
        scale = side / FACE_SIDE
        matrix = cv2.getRotationMatrix2D(FACE_CENTRE, angle, scale)
        matrix[:, 2] += np.array([cx, cy]) - np.array(FACE_CENTRE)
        x = 20 + i
        frame = scene[100 : 100 + HEIGHT, x : x + WIDTH].copy()
        mask = np.full(photo.shape[:2], 255, np.uint8)
        warped = cv2.warpAffine(photo, matrix, (WIDTH, HEIGHT))
        inside = cv2.warpAffine(mask, matrix, (WIDTH, HEIGHT)) > 127
        frame[inside] = warped[inside]
        if occluded(i):
            top = round(cy + side * 0.1)
            cv2.rectangle(
                frame,
                (round(cx - side), top),
                (round(cx + side), round(cy + side)),
                (90, 90, 90),
                -1,
            )
        frames.append(frame)
        half = side / 2
        labels[str(i)] = [[round(cx - half), round(cy - half), round(side), round(side)]]
    video = ROOT / "video" / "closeup.mp4"
    subprocess.run(
        [
            *(ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24"),
            *("-video_size", f"{WIDTH}x{HEIGHT}", "-framerate", "25", "-i", "pipe:0"),
            *("-c:v", "libx264", "-preset", "slow", "-crf", "26", "-pix_fmt", "yuv420p"),
            str(video),
        ],
        input=b"".join(frame.tobytes() for frame in frames),
        check=True,
    )
    (ROOT / "labels" / "closeup.json").write_text(json.dumps(labels, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
