"""What decoding a video's segments costs: from frame 0 each time, or from the keyframe before.

A segmented video job sends each range of frames to its own worker, and each worker decodes its
range. The baseline is how ranges were decoded before: OpenCV from frame 0, grabbing (decoding
and dropping) every frame before the range, so the last segment of a long video decodes nearly
all of it and the whole job decodes the video about segments/2 times over. Atelier's
`FrameReader` has ffmpeg seek to the keyframe before the range. Rows, on chaplin.mp4 played four
times over (38.6 s, 964 frames, 640x360), encoded with a keyframe every 2 s and with x264's
default (at most every 10 s), cut into 4 s segments as `plan_segments` does:

- the last segment alone, and all segments one after another (the decoding a job's workers do
  between them), decoded both ways: frames decoded (counted, so they do not drift with the
  machine's load) and seconds, with the ratio baseline / Atelier of the same run;
- for reference, decoding the whole video once with OpenCV.

`python -m bench.segments` runs every timed measure five times, interleaved, keeps the fastest
and writes the `segments` section of BENCHMARKS.md; `--quick` runs once and only prints.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2

from bench.report import machine_line, write_section
from workers.video.ffmpeg import ffmpeg_exe
from workers.video.frames import FrameReader
from workers.video.pipeline import plan_segments
from workers.video.probe import VideoInfo, probe_video

ROOT = Path(__file__).resolve().parents[1]
CHAPLIN = ROOT / "tests" / "data" / "video" / "chaplin.mp4"
SEGMENT_SECONDS = 4.0


def long_clip(work: Path, keyframe_every: int | None) -> Path:
    """chaplin.mp4 four times over, video only, with a keyframe every `keyframe_every` frames
    (None: x264's default, every 250 frames at most, more at scene cuts)."""
    name = f"chaplin-x4-g{keyframe_every or 'default'}.mp4"
    gop = ["-g", str(keyframe_every), "-keyint_min", str(keyframe_every)] if keyframe_every else []
    subprocess.run(
        [
            *(ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "3", "-i", str(CHAPLIN), "-an"),
            *("-c:v", "libx264", "-preset", "veryfast", "-crf", "20", *gop),
            *("-pix_fmt", "yuv420p", str(work / name)),
        ],
        check=True,
    )
    return work / name


def from_frame_zero(path: Path, first: int, last: int) -> int:
    """The baseline: OpenCV grabs every frame before `first`, then reads the range."""
    capture = cv2.VideoCapture(str(path))
    read = 0
    try:
        for _ in range(first):
            capture.grab()
        for _ in range(first, last + 1):
            ok, _frame = capture.read()
            read += ok
    finally:
        capture.release()
    return read


def from_keyframe(path: Path, info: VideoInfo, first: int, last: int) -> int:
    return sum(1 for _ in FrameReader(path, info, first, last))


def timed(run: Callable[[], int], expected: int) -> float:
    started = time.perf_counter()
    frames = run()
    seconds = time.perf_counter() - started
    if frames != expected:
        raise RuntimeError(f"decoded {frames} frames, expected {expected}")
    return seconds


def decoded_from_keyframe(path: Path, info: VideoInfo, first: int, end: int) -> int:
    """How many frames ffmpeg decodes to deliver frames [first, end) (its own count)."""
    reader = FrameReader(path, info, first, end - 1)
    sum(1 for _ in reader)
    return reader.decoded or 0


def measure(path: Path, rounds: int) -> dict[str, float | int]:
    """Frames decoded by each way (counted once: they do not vary) and the fastest seconds of
    each measure over `rounds` interleaved rounds."""
    info = probe_video(path)
    ranges = plan_segments(info, SEGMENT_SECONDS)
    first, end = ranges[-1]
    measures: dict[str, Callable[[], float]] = {
        "last_zero": lambda: timed(lambda: from_frame_zero(path, first, end - 1), end - first),
        "last_key": lambda: timed(lambda: from_keyframe(path, info, first, end - 1), end - first),
        "all_zero": lambda: sum(
            timed(lambda a=a, b=b: from_frame_zero(path, a, b - 1), b - a) for a, b in ranges
        ),
        "all_key": lambda: sum(
            timed(lambda a=a, b=b: from_keyframe(path, info, a, b - 1), b - a) for a, b in ranges
        ),
        "whole": lambda: timed(
            lambda: from_frame_zero(path, 0, info.frame_count - 1), info.frame_count
        ),
    }
    runs = [{name: run() for name, run in measures.items()} for _ in range(rounds)]
    result: dict[str, float | int] = {name: min(r[name] for r in runs) for name in measures}
    return result | {
        "segments": len(ranges),
        "first": first,
        "frames": info.frame_count,
        "last_zero_frames": end,
        "last_key_frames": decoded_from_keyframe(path, info, first, end),
        "all_zero_frames": sum(b for _, b in ranges),
        "all_key_frames": sum(decoded_from_keyframe(path, info, a, b) for a, b in ranges),
    }


def table(results: dict[str, dict[str, float | int]]) -> str:
    lines = [
        "## Video segments: decoding cost",
        "",
        "chaplin.mp4 four times over (38.6 s, 964 frames, 640x360, H.264), cut into "
        f"{SEGMENT_SECONDS:g} s segments; decoding only (no detection or encoding). Baseline: "
        "OpenCV decodes from frame 0 and drops the frames before the segment (as segments did "
        "before); Atelier: ffmpeg seeks to the keyframe before the segment. Frames decoded are "
        "counted (ffmpeg's own count for Atelier: its decoder runs a few frames past the last one "
        "asked for); seconds are the fastest of the runs, and the ratio is baseline / Atelier in "
        "the same run.",
        "",
        "| Keyframes | Decoding | frames decoded, baseline | Atelier | seconds, baseline "
        "| Atelier | baseline / Atelier |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, r in results.items():
        for key, what in (
            ("last", f"last segment (frames {r['first']}-{r['frames'] - 1})"),
            ("all", f"all {r['segments']} segments, one after another"),
        ):
            zero, key_s = r[f"{key}_zero"], r[f"{key}_key"]
            lines.append(
                f"| {label} | {what} | {r[f'{key}_zero_frames']} | {r[f'{key}_key_frames']} "
                f"| {zero:.3f} | {key_s:.3f} | {zero / key_s:.1f}x |"
            )
    whole = min(r["whole"] for r in results.values())
    lines += [
        "",
        f"- For reference, OpenCV decodes the whole video once in {whole:.3f} s.",
        "- Each Atelier segment also starts an ffmpeg process (about 0.1 s on this machine), "
        "which weighs on short segments.",
        "",
        machine_line(),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run, print only")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else 5
    with tempfile.TemporaryDirectory(prefix="bench-segments-") as tmp:
        work = Path(tmp)
        results = {
            "every 2 s": measure(long_clip(work, 50), rounds),
            "x264 default": measure(long_clip(work, None), rounds),
        }
    text = table(results)
    print(text)
    if not args.quick:
        write_section("segments", text)


if __name__ == "__main__":
    main()
