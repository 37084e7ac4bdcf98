"""Memory is bounded by the tracker's window, not by the video's length.

A tiny synthetic video (96x64 at 25 fps, a 24 px face walking across every 40 frames, so tracks
start and end all the time) is processed short (12 s, past the time the tracker needs to fill
its window: about 2 s held ahead, twice that remembered behind) and three times as long in the
same process; the
peak of the memory Python allocates (`tracemalloc`: the tracker's detections and memos, the held
frames, face boxes) must not grow with the length. Compared within one run, not against a
constant: allocators differ between machines.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from atelier.schemas import VideoParams
from tests.support.moving import Scene, Walker, render
from tests.video.media import write_raw_video
from workers.video.centerface import CenterFaceDetector
from workers.video.detect import Box
from workers.video.pipeline import REPORT_EVERY, process_video
from workers.video.track import TrackOptions, track_faces

SHORT, LONG = 300, 1500
EVERY = 2


def scene(frames: int) -> Scene:
    walkers = tuple(
        Walker(24, -12, 32, 4, 0, start=start, end=start + 30, mirror=bool(start % 80))
        for start in range(0, frames, 40)
    )
    return Scene("tiny", "golden_gate.jpg", 96, 64, frames, walkers)


def peak(run: Callable[[], object]) -> int:
    """The peak of Python's allocations while `run` runs, above what was allocated before."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_the_tracker_forgets_what_lies_behind_its_window() -> None:
    """Before, every detection and every answer worked out from it stayed in memory to the end:
    a 30-minute video held 30 minutes of them."""
    detector = CenterFaceDetector()
    options = TrackOptions.for_rate(25, EVERY)
    still = render(scene(SHORT))[0]  # 300 frames, recycled

    def frames(count: int) -> Iterator[tuple[int, np.ndarray]]:
        for index in range(count):
            yield index, still[index % SHORT]

    def run(count: int) -> Callable[[], None]:
        def go() -> None:
            found = sum(bool(f.boxes) for f in track_faces(frames(count), detector, EVERY, options))
            assert found > count // 2

        return go

    # The peak of one run varies by tens of kB with where the allocator's blocks fall (measured:
    # 174-251 kB for the same 300 frames), so the short clip's is the larger of two runs, and
    # the long clip (5x the frames) must stay well below what holding every frame's work gives.
    short = max(peak(run(SHORT)), peak(run(SHORT)))
    long = peak(run(LONG))
    assert long < 1.5 * short, f"peak {short} B for {SHORT} frames, {long} B for {LONG}"


@pytest.fixture(scope="module")
def tiny_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("tiny")
    return {
        count: write_raw_video(folder / f"tiny-{count}.mp4", render(scene(count))[0], "25")
        for count in (SHORT, LONG)
    }


def test_a_long_video_runs_in_the_memory_of_a_short_one(
    tiny_videos: dict[int, Path], tmp_path: Path
) -> None:
    """File to file, face boxes handed over as the window slides (as the worker writes them to
    the database): nothing of a frame stays behind once it is written."""
    params = VideoParams(filter="solid", detect_every=EVERY, keep_audio=False)
    handed: dict[int, list[tuple[int, int]]] = {}

    def run(count: int) -> Callable[[], None]:
        def go() -> None:
            batches = handed.setdefault(count, [])

            def take(first: int, faces: list[list[Box]]) -> None:
                batches.append((first, len(faces)))

            stats = process_video(tiny_videos[count], tmp_path / "out.mp4", params, on_faces=take)
            assert stats.frames == count and stats.faces == [] and stats.with_faces > count // 2

        return go

    # As for the tracker above: the larger of two short runs against one 5x longer.
    short = max(peak(run(SHORT)), peak(run(SHORT)))
    long = peak(run(LONG))
    assert long < 1.5 * short, f"peak {short} B for {SHORT} frames, {long} B for {LONG}"
    assert handed[LONG] == [(first, REPORT_EVERY) for first in range(0, LONG, REPORT_EVERY)]
