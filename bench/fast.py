"""The fast engine against Gatys optimisation, the fast engine's own costs, and painted faces.

Every figure comes from one run on one machine, and each table has its baseline in the same run:

- **Throughput.** Images per second of the fast engine (the content x style grid of the test
  photos and paintings, style vectors computed once per style as a worker does) and of the Gatys
  engine at the same size: Gatys's seconds per image are 500 Adam iterations extrapolated from the
  median of timed steps after the first (the first pays the trace and compile), on random-init
  VGG19 (speed does not depend on the weights).
- **Where the fast engine's time goes**: style prediction vs transform, over the grid.
- **Large outputs: tiles vs resize.** At 1024 px (512 with `--quick`), the content painted in
  feathered 384 px tiles at full resolution (the engine's default) against painted at 384 px and
  upsampled: seconds, style distance to the painting (`tests.support.style_stats`, both at 384
  px), and detail kept (mean gradient magnitude of the result over the content's; correlation of
  the two gradient maps).
- **Faces in video.** Frames per second of `process_video` on a synthetic face clip (the test
  portrait moving over a textured background, 320x240), blur (baseline) vs the `painting` filter on
  the face region vs `painting_frames` (whole frames).
- **`init: fast`** for Gatys: the style distance of the image after k Adam steps from the
  content vs from the fast painting (random-init VGG19: this times how far each start is from
  the style statistics, not what ImageNet weights would paint).

`python -m bench.fast` writes the `fast` section of BENCHMARKS.md; `--quick` only prints.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from atelier.media import fit_longest, load_rgb, resize_longest
from atelier.schemas import NSTParams, VideoParams
from bench.report import machine_line, write_section
from tests.support.style_stats import gram_distance

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
CONTENTS = ("content/tubingen.jpg", "content/golden_gate.jpg", "faces/grace_hopper.jpg")
STYLES = ("style/starry_night.jpg", "style/the_scream.jpg", "style/wave_crop.jpg")
MAX_PIXELS = 64_000_000
GATYS_ITERATIONS = 500


def _image(relative: str, longest: int | None = None) -> np.ndarray:
    image = load_rgb(DATA / relative, MAX_PIXELS)
    return image if longest is None else resize_longest(image, longest)


def fast_grid(size: int, repeats: int) -> dict[str, float]:
    """The contents x styles grid through one engine, `repeats` times (the first run pays the
    style vectors; later runs find them cached, as a long-lived worker does)."""
    from workers.fast.engine import FastJob, FastStyleEngine

    engine = FastStyleEngine()
    contents = [_image(path, 1024) for path in CONTENTS]
    styles = [(path, _image(path, 512)) for path in STYLES]
    warm_up = FastJob(contents[0], [("warm-up", styles[0][1])])
    engine.stylize(warm_up, size)  # first calls allocate; the grid's styles stay uncached
    engine.timings = type(engine.timings)()
    count, started = 0, time.perf_counter()
    for _ in range(repeats):
        for content, style in itertools.product(contents, styles):
            engine.stylize(FastJob(content, [style]), size)
            count += 1
    seconds = time.perf_counter() - started
    timings = engine.timings
    return {
        "images": count,
        "seconds": seconds,
        "images_per_s": count / seconds,
        "predict_s": timings.predict,
        "transform_s": timings.transform,
        "predict_calls": timings.calls["predict"],
        "transform_calls": timings.calls["transform"],
    }


def gatys_step(size: int, steps: int) -> tuple[float, float]:
    """(median seconds per Adam step after the first, seconds of the first step) at `size`."""
    from workers.nst.engine import EngineJob, StyleTransferEngine

    engine = StyleTransferEngine("none")
    content = _image(CONTENTS[0], 1024)
    job = EngineJob(content, [(STYLES[0], _image(STYLES[0], 512))])
    params = NSTParams(size=size, iterations=steps + 1, weights="none")
    stamps = [time.perf_counter()]
    engine.run([job], params, on_progress=lambda _: stamps.append(time.perf_counter()))
    durations = [b - a for a, b in itertools.pairwise(stamps)]
    return statistics.median(durations[1:]), durations[0]


def _gradient(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(np.asarray(image, np.float32), cv2.COLOR_RGB2GRAY)
    return np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))


def tiles_vs_resize(size: int) -> list[dict[str, float | str]]:
    """Both ways of painting a large output, on every content with the first style."""
    from workers.fast.engine import FastJob, FastStyleEngine

    engine = FastStyleEngine()
    style_key, style = STYLES[0], _image(STYLES[0], 512)
    reference = resize_longest(style, 384)
    rows = []
    for method in ("tile", "resize"):
        seconds, distances, detail, structure = 0.0, [], [], []
        for path in CONTENTS:
            content = _image(path)
            height, width = fit_longest(*content.shape[:2], size)
            job = FastJob(content, [(style_key, style)])
            vector = engine.mixed_vector(job)
            started = time.perf_counter()
            image, _ = engine.paint(content, vector, height, width, method)
            seconds += time.perf_counter() - started
            source = cv2.resize(content, (width, height), interpolation=cv2.INTER_AREA)
            distances.append(gram_distance(resize_longest(image, 384), reference))
            painted, original = _gradient(image), _gradient(source)
            detail.append(painted.mean() / original.mean())
            structure.append(np.corrcoef(painted.ravel(), original.ravel())[0, 1])
        rows.append(
            {
                "method": method,
                "seconds": seconds / len(CONTENTS),
                "style_distance": statistics.fmean(distances),
                "detail": statistics.fmean(detail),
                "structure": statistics.fmean(structure),
            }
        )
    return rows


def _face_clip(folder: Path, frames: int) -> Path:
    """The test portrait (scaled to 100 px tall) gliding over a moving texture, 320x240, mp4v."""
    photo = cv2.imread(str(DATA / "faces" / "grace_hopper.jpg"))
    photo = cv2.resize(photo, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)
    ph, pw = photo.shape[:2]
    width, height = 320, 240
    path = folder / "faces.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (width, height))
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, size=(height, width * 2, 3), dtype=np.uint8)
    texture = cv2.GaussianBlur(texture, (0, 0), 3)
    for i in range(frames):
        frame = texture[:, i * 2 : i * 2 + width].copy()
        x = round(5 + (width - pw - 10) * i / max(1, frames - 1))
        y = (height - ph) // 2
        frame[y : y + ph, x : x + pw] = photo
        writer.write(frame)
    writer.release()
    return path


def video_rows(frames: int) -> list[dict[str, float | str]]:
    from workers.video.pipeline import process_video

    style = DATA / STYLES[0]
    sha = "0" * 64  # the pipeline reads the painting from `style_path`; the id is not used
    variants = [
        ("blur (baseline)", VideoParams(filter="blur", keep_audio=False)),
        ("painting, faces", VideoParams(filter="painting", style=sha, keep_audio=False)),
        (
            "painting, whole frames",
            VideoParams(filter="painting", style=sha, painting_frames=True, keep_audio=False),
        ),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        clip = _face_clip(Path(scratch), frames)
        for name, params in variants:
            out = Path(scratch) / "out.mp4"
            stats = process_video(clip, out, params, style_path=style)
            faces = sum(1 for boxes in stats.faces if boxes)
            rows.append(
                {
                    "variant": name,
                    "fps": stats.frames / stats.seconds,
                    "faces": faces / stats.frames,
                }
            )
    return rows


def init_rows(size: int, checkpoints: tuple[int, ...]) -> list[dict[str, float | str]]:
    """Style distance after k Adam steps, from the content and from the fast painting (one run
    per init, the image taken at each checkpoint)."""
    from workers.nst.engine import EngineJob, StyleTransferEngine

    engine = StyleTransferEngine("none")
    content = _image(CONTENTS[1], 512)
    style = _image(STYLES[1], 512)
    reference = resize_longest(style, size)
    job = EngineJob(content, [(STYLES[1], style)])
    rows = []
    for init in ("content", "fast"):
        distances: dict[str, float | str] = {"init": init}

        def keep(event, distances=distances) -> None:
            if event.iteration in checkpoints and event.previews is not None:
                distances[f"after {event.iteration}"] = gram_distance(event.previews[0], reference)

        params = NSTParams(
            size=size, iterations=max(checkpoints), init=init, weights="none", preview_every=1
        )
        engine.run([job], params, on_progress=keep)
        rows.append(distances)
    return rows


def _engine_lines(size: int, fast: dict[str, float], step: tuple[float, float]) -> list[str]:
    """The speed of both engines on one image, and where the fast engine's time goes."""
    gatys_image_s = GATYS_ITERATIONS * step[0]
    gatys_ips = 1.0 / gatys_image_s
    split = fast["predict_s"] + fast["transform_s"]
    return [
        "## Fast engine vs Gatys (`python -m bench.fast`)",
        "",
        machine_line(),
        "",
        f"| engine at {size} px | seconds per image | images/s | vs Gatys |",
        "|---|---|---|---|",
        f"| Gatys, {GATYS_ITERATIONS} Adam iterations (extrapolated) | {gatys_image_s:.1f} | "
        f"{gatys_ips:.4f} | 1x |",
        f"| fast (Magenta, onnxruntime) | {fast['seconds'] / fast['images']:.3f} | "
        f"{fast['images_per_s']:.2f} | {fast['images_per_s'] / gatys_ips:,.0f}x |",
        "",
        f"Gatys: median Adam step {step[0]:.3f} s after a first step of {step[1]:.1f} s (trace "
        "and XLA compile), random-init VGG19, one image. Fast: "
        f"{fast['images']} images ({len(CONTENTS)} contents x {len(STYLES)} styles, repeated), one "
        "engine, style vectors cached after their first use.",
        "",
        "| fast engine | calls | seconds | share of network time | ms per call |",
        "|---|---|---|---|---|",
        f"| style prediction | {fast['predict_calls']} | {fast['predict_s']:.2f} | "
        f"{fast['predict_s'] / split:.0%} | "
        f"{1000 * fast['predict_s'] / max(1, fast['predict_calls']):.0f} |",
        f"| transform | {fast['transform_calls']} | {fast['transform_s']:.2f} | "
        f"{fast['transform_s'] / split:.0%} | "
        f"{1000 * fast['transform_s'] / max(1, fast['transform_calls']):.0f} |",
    ]


def report(
    size: int,
    fast: dict[str, float],
    step: tuple[float, float],
    tiles: list[dict],
    large: int,
    video: list[dict],
    inits: list[dict],
    init_size: int,
    frames: int,
    load: tuple[float, float, float],
) -> str:
    """BENCHMARKS.md's section on the fast engine: speed against Gatys, large outputs, video
    filters and `init` as a Gatys start."""
    lines = [
        *_engine_lines(size, fast, step),
        "",
        f"Large outputs, {large} px (mean over the contents, Starry Night): tiles are the default.",
        "",
        "| method | seconds per image | style distance (lower: closer) | detail (gradient vs "
        "content) | structure (gradient correlation) |",
        "|---|---|---|---|---|",
        *(
            f"| {r['method']} | {r['seconds']:.2f} | {r['style_distance']:.3f} | "
            f"{r['detail']:.2f} | {r['structure']:.2f} |"
            for r in tiles
        ),
        "",
        f"Faces in video: a {frames}-frame 320x240 clip with one moving face, file to file.",
        "",
        "| filter | frames/s | vs blur | frames with a face |",
        "|---|---|---|---|",
        *(
            f"| {r['variant']} | {r['fps']:.1f} | {r['fps'] / video[0]['fps']:.2f}x | "
            f"{r['faces']:.0%} |"
            for r in video
        ),
        "",
        f"`init`: style distance to The Scream after k Adam steps at {init_size} px "
        "(random-init VGG19; the same fixed feature space as above).",
        "",
        "| init | " + " | ".join(k for k in inits[0] if k != "init") + " |",
        "|---|" + "---|" * (len(inits[0]) - 1),
        *(
            f"| {r['init']} | " + " | ".join(f"{v:.3f}" for k, v in r.items() if k != "init") + " |"
            for r in inits
        ),
        "",
        f"Load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small figures, print only")
    parser.add_argument("--size", type=int, default=384, help="size of the throughput rows")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    size = 128 if args.quick else args.size
    frames = 20 if args.quick else 60
    fast = fast_grid(size, 1 if args.quick else 3)
    print(f"fast: {fast['images_per_s']:.2f} images/s", flush=True)
    step = gatys_step(size, 2 if args.quick else 4)
    print(f"gatys: {step[0]:.3f} s per step", flush=True)
    large = 512 if args.quick else 1024
    tiles = tiles_vs_resize(large)
    print(f"tiles vs resize: {tiles}", flush=True)
    video = video_rows(frames)
    print(f"video: {video}", flush=True)
    init_size = 64 if args.quick else 128
    inits = init_rows(init_size, (1, 10) if args.quick else (1, 10, 50))
    print(f"init: {inits}", flush=True)
    text = report(size, fast, step, tiles, large, video, inits, init_size, frames, load)
    print(text)
    if not args.quick:
        write_section("fast", text)


if __name__ == "__main__":
    main()
