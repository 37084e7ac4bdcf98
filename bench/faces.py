"""Face hiding quality and speed: recall, false boxes and frames/s on the labelled face set.

The labelled set and its scoring (recall of hidden faces, false boxes per labelled frame) are
`tests.support.faces`, which the recall tests share.

Configurations, all run file to file on the same inputs in the same run, blur filter:

- Haar: the OpenCV cascade on every frame, with the tracker (the detector before BlazeFace);
- BlazeFace (on the frame and its tiles, with the tracker) on every 2nd frame (the default before
  CenterFace);
- CenterFace (Atelier's own decoding of the bundled network, with the tracker) on every frame,
  on every 2nd frame (the default), and on every 5th (`--detect-every 5`);
- deface 1.5 (CenterFace network, its defaults: threshold 0.2, ellipse masks 1.3x the box), in
  its own virtualenv (bench/.venv-deface, as bench/video.py installs it). Its masks are read back
  from its output: it is run with a magenta replacement image, and the magenta pixels of each
  frame are its masks (their connected regions its boxes).

Atelier's masks are its recorded boxes grown by the padding, as the filter draws them.
`python -m bench.faces` writes the `faces` section of BENCHMARKS.md; `--quick` only prints.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from atelier.schemas import VideoParams
from bench.report import machine_line, write_section
from bench.video import ensure_deface
from tests.support.faces import CLIPS, HIDDEN, Score, frame_shape, load_labels, score, score_run
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

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


def atelier(clip: str, out: Path, name: str, params: VideoParams) -> Row:
    src = CLIPS[clip]
    started = time.perf_counter()
    stats = process_video(src, out, params)
    seconds = time.perf_counter() - started
    result = score_run(clip, stats.faces, frame_shape(src), params)
    return Row(name, clip, result, stats.frames, seconds, stats.tracked)


def magenta_masks(path: Path) -> list[np.ndarray]:
    """Per frame, the pixels of `path` close to pure magenta (after H.264 coding)."""
    capture = cv2.VideoCapture(str(path))
    masks = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        b, g, r = (frame[..., i].astype(int) for i in range(3))
        masks.append((r > 170) & (b > 170) & (g < 100))
    capture.release()
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
    result = score(load_labels(clip), lambda i: masks[i], lambda i: mask_boxes(masks[i]))
    return Row("deface (CenterFace)", clip, result, len(masks), seconds, None)


CONFIGS: list[tuple[str, VideoParams]] = [
    ("Haar cascade, every frame", VideoParams(filter="blur", detector="haar", detect_every=1)),
    ("BlazeFace, every 2nd frame", VideoParams(filter="blur", detector="blazeface")),
    ("CenterFace, every frame", VideoParams(filter="blur", detect_every=1)),
    ("Default: CenterFace, every 2nd frame", VideoParams(filter="blur")),
    ("CenterFace, --detect-every 5", VideoParams(filter="blur", detect_every=5)),
]


def table(rows: list[Row], notes: list[str]) -> str:
    lines = [
        "## Face hiding: recall, false boxes, speed",
        "",
        f"Blur filter, file to file, {os.cpu_count()} CPU cores, OpenCV {cv2.__version__}, on the "
        "labelled face set (tests/data/labels). Recall: labelled faces whose box the masks cover "
        f"at least {HIDDEN:.0%}. False boxes: masks on no labelled face, per labelled frame. "
        "frames/s ratio against deface on the same clip in the same run.",
        "",
        "| Clip | Configuration | recall | false boxes / frame | frames/s | vs deface "
        "| frames kept covered through gaps |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        peer = next((r for r in rows if r.clip == row.clip and r.tracked is None), None)
        ratio = f"{row.fps / peer.fps:.2f}x" if peer else "n/a"
        tracked = "n/a" if row.tracked is None else f"{row.tracked}/{row.frames}"
        lines.append(
            f"| {row.clip} | {row.name} | {row.score.recall:.1%} "
            f"({row.score.hidden}/{row.score.faces}) | {row.score.false_per_frame:.2f} "
            f"| {row.fps:.1f} | {ratio} | {tracked} |"
        )
    lines += ["", *[f"- {note}" for note in notes], "", machine_line()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="close-up clip only, print only")
    args = parser.parse_args(argv)
    clips = ["closeup"] if args.quick else ["chaplin", "closeup"]
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
            for name, params in CONFIGS:
                rows.append(atelier(clip, work / f"{clip}.mp4", name, params))
                print(rows[-1])
            if exe is not None:
                rows.append(deface(exe, clip, work))
                print(rows[-1])
    load = os.getloadavg()
    notes.append(
        f"Each row ran once; load average at the end of the run {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} on {os.cpu_count()} cores: on a busy machine frames/s move with the load, "
        "compare ratios rather than absolute figures."
    )
    text = table(rows, notes)
    print(text)
    if not args.quick:
        write_section("faces", text)


if __name__ == "__main__":
    main()
