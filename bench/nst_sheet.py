"""`python -m bench.nst_sheet`: the tutorial loop and the engine's defaults at equal wall time.

For every pair of the test photos (`tests/data/content`) and two paintings, at `--size` px on
the ImageNet weights: the engine runs the default `NSTParams` (with `--iterations`, if given,
instead of the default count), timed from the call; its step is compiled for that shape first,
as in a running worker. Then the tutorial's eager loop (Adam 0.02 on [0, 1], from the content,
see `bench.nst_quality.Tutorial`) runs on the same pair for the same number of seconds, its
targets included. Both images go into `docs/nst-equal-time.png`, each captioned with its
iterations and its loss on the engine's objective relative to the engine's, and the figures
into the `nst-sheet` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from atelier.media import load_rgb, resize_longest
from atelier.reports import SheetCell, contact_sheet_png
from atelier.schemas import NSTParams
from bench.nst_images import MAX_PIXELS, ROOT
from bench.nst_quality import Tutorial
from bench.report import machine_line, write_section
from workers.nst import losses
from workers.nst.device import configure_tensorflow
from workers.nst.engine import EngineJob, StyleTransferEngine

SHEET = ROOT / "docs" / "nst-equal-time.png"
STYLES = ("starry_night.jpg", "the_scream.jpg")


@dataclass
class Pair:
    content: str
    style: str
    seconds: float  # the engine's wall time, given to the tutorial too
    engine_iterations: int
    tutorial_iterations: int
    engine_loss: float
    tutorial_loss: float
    engine_image: np.ndarray
    tutorial_image: np.ndarray


def tutorial_for(tutorial: Tutorial, seconds: float, started: float) -> None:
    """Step the eager loop until `seconds` have passed since `started`."""
    while time.perf_counter() - started < seconds:
        tutorial.steps(1)


def objective(tutorial: Tutorial) -> float:
    """The engine's loss of the tutorial's current image."""
    pixels = tutorial.image * 255.0
    outputs = tutorial.model(pixels, training=False)
    parts = losses.objective(outputs, pixels, tutorial.content, tutorial.style_grams,
                             tutorial.layer_weights, tutorial.loss_weights)  # fmt: skip
    return float(tf.reduce_sum(parts[0]))


def run_pair(engine: StyleTransferEngine, content: Path, style: Path, params: NSTParams) -> Pair:
    photo = resize_longest(load_rgb(content, MAX_PIXELS), params.size)
    painting = resize_longest(load_rgb(style, MAX_PIXELS), params.size)
    job = EngineJob(photo, [(style.stem, painting)])
    engine.run([job], params.model_copy(update={"iterations": 1}))  # compile, as a worker has
    started = time.perf_counter()
    [result] = engine.run([job], params)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    tutorial = Tutorial(photo.astype(np.float32), painting.astype(np.float32), params)
    tutorial_for(tutorial, seconds, started)
    image = np.clip(tutorial.image.numpy()[0] * 255.0 + 0.5, 0, 255).astype(np.uint8)
    print(f"{content.stem} x {style.stem}: {seconds:.0f} s, engine {params.iterations} it, "
          f"tutorial {len(tutorial.losses)} it", flush=True)  # fmt: skip
    return Pair(content.stem, style.stem, seconds, params.iterations, len(tutorial.losses),
                result.final.total, objective(tutorial), result.image, image)  # fmt: skip


def sheet(pairs: list[Pair], size: int) -> bytes:
    data = ROOT / "tests" / "data"
    styles = {
        p.style: resize_longest(load_rgb(data / "style" / f"{p.style}.jpg", MAX_PIXELS), size)
        for p in pairs
    }
    styles = {name: np.clip(image + 0.5, 0, 255).astype(np.uint8) for name, image in styles.items()}
    contents = [Image.open(data / "content" / f"{p.content}.jpg") for p in pairs]
    cells = [
        [
            SheetCell(Image.fromarray(styles[p.style]), p.style),
            SheetCell(Image.fromarray(p.tutorial_image),
                      f"{p.tutorial_iterations} it, loss x{p.tutorial_loss / p.engine_loss:.2f}"),
            SheetCell(Image.fromarray(p.engine_image), f"{p.engine_iterations} it, loss x1"),
        ]
        for p in pairs
    ]  # fmt: skip
    labels = [f"{p.seconds:.0f} s each" for p in pairs]
    columns = ["style", "tutorial loop", "engine defaults"]
    return contact_sheet_png(contents, [None] * 3, cells, 192, labels, columns)


def report(pairs: list[Pair], params: NSTParams) -> str:
    lines = [
        "## Neural style transfer: the tutorial loop and the engine's defaults at equal time",
        "",
        f"![tutorial loop and engine defaults at equal wall time]({SHEET.relative_to(ROOT)})",
        "",
        f"`python -m bench.nst_sheet`: {params.size} px, ImageNet weights, the engine's default "
        f"settings with {params.iterations} iterations; the tutorial's eager loop then runs for "
        "the engine's wall time on the same pair (targets included; the engine's step was "
        "compiled beforehand, as in a running worker). Loss: the engine's objective of the "
        "returned image.",
        "",
        "| content | style | seconds each | engine iterations | tutorial iterations | "
        "tutorial loss / engine loss |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for p in pairs:
        lines.append(
            f"| {p.content} | {p.style} | {p.seconds:.0f} | {p.engine_iterations} | "
            f"{p.tutorial_iterations} | {p.tutorial_loss / p.engine_loss:.2f} |"
        )
    return "\n".join(lines) + "\n\n" + machine_line() + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, help="instead of the default iterations")
    parser.add_argument("--weights", default="imagenet")
    args = parser.parse_args(argv)
    configure_tensorflow()
    params = NSTParams(size=args.size, weights=args.weights)
    if args.iterations:
        params = params.model_copy(update={"iterations": args.iterations})
    engine = StyleTransferEngine(args.weights)
    data = ROOT / "tests" / "data"
    pairs = [
        run_pair(engine, content, data / "style" / style, params)
        for content in sorted((data / "content").glob("*.jpg"))
        for style in STYLES
    ]
    png = sheet(pairs, args.size)
    # 256 colours keep the file small enough for the repository (a third of the RGB size)
    Image.open(io.BytesIO(png)).quantize(256).save(SHEET, optimize=True)
    text = report(pairs, params)
    print(text)
    write_section("nst-sheet", text)


if __name__ == "__main__":
    main()
