"""Style-transfer throughput: the engine against a plain one-image-at-a-time loop, same run.

Each row is a grid job set of `batch` distinct contents x 1 style (square crops of the content
photos, so the engine can stack them into one tensor) at `size` px, run twice in the same
process on the same random-init VGG19 (`build_extractor("none", ...)`, one seeded network):

- baseline: the loop of the TensorFlow style-transfer tutorial: one image at a time, the style
  and content targets recomputed for every job, the image a `tf.Variable`, an eager
  `tf.GradientTape` step (no `tf.function`), `tf.keras.optimizers.Adam`;
- engine: `StyleTransferEngine.run` on the whole set, a fresh engine per row (no compiled step,
  empty style cache), XLA on, as a worker runs it.

Figures are seconds per optimiser iteration per image, the median of the timed iterations after
the first: the first iteration (targets, and for the engine the trace and the XLA compile) is
reported apart. The speed-up divides the baseline's figure by the engine's at the same size and
batch. On a GPU the engine rows also give iterations/s and the share of the card's dense TF32
peak: a step costs about 2x `forward_flops` per image (see its docstring).

`python -m bench.nst` writes the `nst` section of BENCHMARKS.md. `--quick` (64 px, batches 1
and 2, 2 iterations) only prints the table: figures from so few steps are too noisy to record.

`python -m bench.nst --time-to-quality` writes the `nst-quality` section instead: seconds to
reach the tutorial loop's 500-iteration loss, per method (see `bench.nst_quality`); with
`--quick`, 64 px and 20 iterations, printed only.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from atelier.media import load_rgb, resize_longest, resize_to
from atelier.schemas import NSTParams
from bench.report import machine_line, write_section
from workers.nst.device import configure_tensorflow
from workers.nst.engine import EngineJob, StyleTransferEngine
from workers.nst.vgg import build_extractor, forward_flops

ROOT = Path(__file__).resolve().parents[1]
IMAGE_DIRS = (ROOT / "tests" / "data", ROOT / "samples")
STYLE = "starry_night.jpg"
MAX_PIXELS = 64_000_000

# Dense (no sparsity) TF32 tensor-core peaks from NVIDIA's data sheets, in TFLOP/s, matched
# against the device name in this order (the PCIe H100 name also contains "H100").
TF32_PEAK_TFLOPS = (("H100 PCIe", 378.0), ("H100", 494.7), ("H200", 494.7), ("A100", 156.0))


@dataclass(frozen=True)
class Row:
    size: int
    batch: int
    iterations: int  # timed iterations of each side (after the first)
    baseline_s: float  # seconds per iteration per image, median
    engine_s: float  # seconds per iteration per image, median
    baseline_first_s: float  # per image: targets + first eager step, mean over the jobs
    engine_first_s: float  # whole set: targets, trace, XLA compile and the first step
    engine_xla: bool  # False when XLA could not compile the step and the engine fell back
    flops_per_image_step: float

    @property
    def speedup(self) -> float:
        return self.baseline_s / self.engine_s

    @property
    def engine_iterations_per_second(self) -> float:
        """Optimiser iterations of the whole set per second."""
        return 1.0 / (self.engine_s * self.batch)

    @property
    def engine_tflops(self) -> float:
        return self.flops_per_image_step / self.engine_s / 1e12


# -- images ------------------------------------------------------------------------------------


def image_dir() -> Path:
    for folder in IMAGE_DIRS:
        if (folder / "style" / STYLE).is_file() and any((folder / "content").glob("*.jpg")):
            return folder
    sys.exit(f"no content/*.jpg and style/{STYLE} under {' or '.join(map(str, IMAGE_DIRS))}")


def distinct_contents(count: int, size: int) -> list[np.ndarray]:
    """`count` different size x size crops of the content photos: left, centre and right (or
    top, middle, bottom) squares of each photo, then the same mirrored and flipped. Distinct
    pixels keep the batch honest; one square shape lets the engine stack them."""
    photos = [
        load_rgb(path, MAX_PIXELS) for path in sorted((image_dir() / "content").glob("*.jpg"))
    ]
    flips = (
        lambda a: a,
        lambda a: a[:, ::-1],
        lambda a: a[::-1],
        lambda a: a[::-1, ::-1],
    )
    variants = len(photos) * 3 * len(flips)
    if count > variants:
        raise ValueError(f"at most {variants} distinct contents, {count} asked")
    crops = []
    for k in range(count):
        photo = photos[k % len(photos)]
        where, flip = (k // len(photos)) % 3, flips[k // (len(photos) * 3)]
        side = min(photo.shape[:2])
        top = (photo.shape[0] - side) * where // 2
        left = (photo.shape[1] - side) * where // 2
        square = photo[top : top + side, left : left + side]
        crops.append(resize_to(np.ascontiguousarray(flip(square)), size, size))
    return crops


def style_image(size: int) -> np.ndarray:
    return resize_longest(load_rgb(image_dir() / "style" / STYLE, MAX_PIXELS), size)


# -- the baseline ------------------------------------------------------------------------------


def _gram(features: tf.Tensor) -> tf.Tensor:
    maps = tf.cast(features, tf.float32)
    positions = tf.cast(tf.shape(maps)[1] * tf.shape(maps)[2], tf.float32)
    return tf.linalg.einsum("bijc,bijd->bcd", maps, maps) / positions


def baseline_job(
    content: np.ndarray,
    style: np.ndarray,
    params: NSTParams,
    steps: int,
    mixed_precision: bool,
) -> list[float]:
    """One job the tutorial's way; the seconds of each step, the first including the targets."""
    model = build_extractor("none", params.content_layer, params.style_layers, mixed_precision)
    started = time.perf_counter()
    style_targets = [_gram(f) for f in model(tf.constant(style[None]), training=False)[:-1]]
    content_target = tf.cast(model(tf.constant(content[None]), training=False)[-1], tf.float32)
    image = tf.Variable(content[None])
    optimizer = tf.keras.optimizers.Adam(learning_rate=params.learning_rate)
    seconds = []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            outputs = model(image, training=False)
            style_loss = tf.add_n(
                [
                    tf.reduce_mean(tf.square(_gram(f) - t))
                    for f, t in zip(outputs[:-1], style_targets, strict=True)
                ]
            )
            content_loss = tf.reduce_mean(
                tf.square(tf.cast(outputs[-1], tf.float32) - content_target)
            )
            loss = (
                params.style_weight * style_loss
                + params.content_weight * content_loss
                + params.tv_weight * tf.reduce_sum(tf.image.total_variation(image))
            )
        optimizer.apply_gradients([(tape.gradient(loss, image), image)])
        image.assign(tf.clip_by_value(image, 0.0, 255.0))
        float(loss)  # waits for the step, as the engine's loss rows do
        now = time.perf_counter()
        seconds.append(now - started)
        started = now
    return seconds


# -- one row -----------------------------------------------------------------------------------


def engine_set(
    contents: list[np.ndarray],
    style: np.ndarray,
    params: NSTParams,
    mixed_precision: bool,
) -> tuple[list[float], bool]:
    """The whole set through a fresh engine; the seconds of each iteration, and whether XLA
    compiled the step."""
    engine = StyleTransferEngine("none", mixed_precision=mixed_precision)
    jobs = [EngineJob(content, [(STYLE, style)]) for content in contents]
    stamps = [time.perf_counter()]
    engine.run(jobs, params, on_progress=lambda _: stamps.append(time.perf_counter()))
    return [b - a for a, b in itertools.pairwise(stamps)], engine.jit_compile


def measure_row(size: int, batch: int, iterations: int, mixed_precision: bool) -> Row:
    params = NSTParams(size=size, iterations=iterations + 1, weights="none")
    contents = distinct_contents(batch, size)
    style = style_image(size)
    baseline = [
        baseline_job(content, style, params, iterations + 1, mixed_precision)
        for content in contents
    ]
    engine, xla = engine_set(contents, style, params, mixed_precision)
    deepest = max((*params.style_layers, params.content_layer), key=_layer_order)
    return Row(
        size=size,
        batch=batch,
        iterations=iterations,
        baseline_s=statistics.median(s for job in baseline for s in job[1:]),
        engine_s=statistics.median(engine[1:]) / batch,
        baseline_first_s=statistics.fmean(job[0] for job in baseline),
        engine_first_s=engine[0],
        engine_xla=xla,
        flops_per_image_step=2.0 * forward_flops(size, size, deepest),
    )


def _layer_order(layer: str) -> tuple[int, int]:
    block, conv = layer.removeprefix("block").split("_conv")
    return int(block), int(conv)


def measure(
    sizes: list[int], batches: list[int], iterations: int, mixed_precision: bool = False
) -> list[Row]:
    """Every (size, batch) row, printed as it is done (a full CPU run takes minutes)."""
    configure_tensorflow()
    rows = []
    for size in sizes:
        for batch in batches:
            row = measure_row(size, batch, iterations, mixed_precision)
            print(
                f"{size} px x{batch}: baseline {row.baseline_s:.3f} s/it/img, "
                f"engine {row.engine_s:.3f} s/it/img ({row.speedup:.2f}x), "
                f"engine first iteration {row.engine_first_s:.1f} s",
                flush=True,
            )
            rows.append(row)
    return rows


# -- device and report -------------------------------------------------------------------------


def gpu_name() -> str | None:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "unknown GPU")


def tf32_peak(name: str, given: float | None) -> float | None:
    """TFLOP/s: `given` when set, else the table's entry for the card, else None."""
    if given is not None:
        return given
    return next((peak for key, peak in TF32_PEAK_TFLOPS if key in name), None)


def table(rows: list[Row], gpu: str | None, peak: float | None, notes: list[str]) -> str:
    device = gpu or f"CPU ({os.cpu_count()} cores)"
    lines = [
        "## Neural style transfer",
        "",
        f"Per-image seconds per Adam iteration on {device}, TensorFlow {tf.__version__}; the "
        "speed-up is the baseline's figure over the engine's, both measured in the same run.",
        "",
    ]
    head = (
        "| size | batch | baseline s/it/img | engine s/it/img | speed-up | "
        "baseline first it. s/img | engine first it. s (compile) |"
    )
    rule = "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    if gpu:
        head += " engine it/s | engine TFLOP/s | TF32 peak share |"
        rule += " ---: | ---: | ---: |"
    lines += [head, rule]
    for row in rows:
        line = (
            f"| {row.size} | {row.batch} | {row.baseline_s:.3g} | {row.engine_s:.3g} | "
            f"{row.speedup:.2f}x | {row.baseline_first_s:.2f} | {row.engine_first_s:.2f}"
            f"{'' if row.engine_xla else ' (no XLA)'} |"
        )
        if gpu:
            share = "n/a" if peak is None else f"{100 * row.engine_tflops / peak:.1f}%"
            line += f" {row.engine_iterations_per_second:.1f} | {row.engine_tflops:.1f} | {share} |"
        lines.append(line)
    lines += ["", *[f"- {note}" for note in notes], "", machine_line()]
    return "\n".join(lines) + "\n"


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 px, batches 1,2, print only")
    parser.add_argument("--sizes", type=_ints, help="comma-separated sizes in px")
    parser.add_argument("--batches", type=_ints, help="comma-separated batch sizes")
    parser.add_argument("--iterations", type=int, help="timed iterations per row, after the first")
    parser.add_argument(
        "--device-peak-tflops", type=float, help="the GPU's dense TF32 peak, if not in the table"
    )
    parser.add_argument(
        "--mixed-precision", action="store_true", help="float16 network (both sides)"
    )
    parser.add_argument(
        "--time-to-quality", action="store_true", help="the time-to-quality table instead"
    )
    parser.add_argument(
        "--tutorial-probe", type=int, default=12, help="eager tutorial iterations timed"
    )
    parser.add_argument(
        "--tutorial-iterations",
        type=_ints,
        help="time to quality: the tutorial iterations that set the target, one per size",
    )
    args = parser.parse_args(argv)
    if args.time_to_quality:
        time_to_quality(args)
        return
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    gpu = gpu_name()
    if args.quick:
        sizes, batches, iterations = [64], [1, 2], 2
    else:
        sizes, batches = ([128, 256, 512] if gpu else [128, 256]), [1, 2, 4, 8]
        iterations = 20 if gpu else 4
    sizes = args.sizes or sizes
    batches = args.batches or batches
    iterations = args.iterations or iterations
    peak = tf32_peak(gpu, args.device_peak_tflops) if gpu else None
    rows = measure(sizes, batches, iterations, args.mixed_precision)
    notes = [
        f"Each row: batch x distinct {STYLE.split('.')[0]}-styled square crops of the content "
        f"photos, {iterations} timed Adam iterations per image after the first, median; "
        "random-init VGG19 (the same seeded network on both sides), default `NSTParams` "
        "(content layer block4_conv2, 5 style layers).",
        "Baseline: one image at a time, style and content targets recomputed per job, eager "
        "`GradientTape` step on a `tf.Variable` with `tf.keras.optimizers.Adam`, as in the "
        "TensorFlow tutorial. Its first iteration (per image) includes that job's targets.",
        "Engine: `StyleTransferEngine.run` on the whole set, a fresh engine per row, XLA on; "
        "its first iteration covers the content and style targets, the trace and the XLA "
        "compile, paid once per input shape by a long-lived worker.",
        f"Load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        "(other work on the machine slows both sides of a row alike, not necessarily equally).",
    ]
    if args.mixed_precision:
        notes.append(
            "Mixed precision: both networks run in float16 (losses in float32); the TF32 peak "
            "share is then not the ceiling, the float16 peak is about twice as high."
        )
    if not gpu:
        notes.append(
            "No GPU on this machine, so no 512 px rows and no share of a GPU's peak: run "
            "`python -m bench.nst` on a GPU host (a worker image works) to add them."
        )
    if gpu:
        notes.append(
            "A step is taken as 2x `forward_flops` per image (forward plus input gradient); "
            + (
                f"TF32 dense peak {peak:g} TFLOP/s."
                if peak is not None
                else "the card's TF32 peak is unknown: pass --device-peak-tflops."
            )
        )
    text = table(rows, gpu, peak, notes)
    print(text)
    if not args.quick:
        write_section("nst", text)


def time_to_quality(args: argparse.Namespace) -> None:
    from bench import nst_quality

    configure_tensorflow()
    load = os.getloadavg()
    sizes = args.sizes or ([64] if args.quick else [128, 256])
    default = 20 if args.quick else nst_quality.TUTORIAL_ITERATIONS
    budgets = args.tutorial_iterations or [default] * len(sizes)
    if len(budgets) != len(sizes):
        sys.exit("--tutorial-iterations needs one number per size")
    results = []
    for index, (size, iterations) in enumerate(zip(sizes, budgets, strict=True)):
        content = distinct_contents(1, size)[0]
        results.append(
            nst_quality.measure_size(
                content,
                style_image(size),
                size,
                min(args.tutorial_probe, iterations),
                iterations,
                nst_quality.METHODS,
                averaged=index == 0,
            )
        )
        # written after every size, so a run cut short keeps the sizes it finished
        text = _quality_text(args, results, sizes, budgets, load)
        print(text, flush=True)
        if not args.quick:
            write_section("nst-quality", text)


def _quality_text(
    args: argparse.Namespace,
    results: list,
    sizes: list[int],
    budgets: list[int],
    load: tuple[float, float, float],
) -> str:
    from bench import nst_quality

    notes = [
        f"Content: a square crop of the first test photo; style: {STYLE}; default `NSTParams` "
        "(content 5, style 100, TV 1e-3, content layer block4_conv2, relu1_1-relu5_1), "
        "initialised from the content, on the random-init VGG19.",
        "From the fast engine's result: the same loss, started from the Magenta painting of the "
        "photo (`init: fast`). It starts far from the photo's content features, which this loss "
        "weighs with the style; `bench/fast.py`'s `init` table measures the distance in style "
        "statistics alone, in a fixed feature space.",
        f"Tutorial: timed over {args.tutorial_probe} eager iterations; the loss after its "
        "iterations is that of the same Adam update (0.02 on [0, 1] = 5.1 grey levels) run "
        "compiled; its eager losses differ from the compiled ones by at most "
        + ", ".join(f"{100 * r.tutorial_check:.2g}% ({r.size} px)" for r in results)
        + " over the timed iterations.",
        "Seconds include the first iteration (targets, trace and XLA compile, paid once per "
        "shape by a long-lived worker); warm seconds leave it out. Multi-scale rows reach the "
        "target only on their full-size scale; `iterations` counts all their steps.",
        "bfloat16: the network in bfloat16 (losses in float32) through Keras' mixed_bfloat16 "
        "policy, on this CPU's AVX512_BF16; its losses are the bfloat16 network's. It runs "
        "at most 60 iterations: compare its s/iteration and loss with the float32 Adam row.",
        f"Load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (other work on the "
        "machine slows every row, not necessarily equally).",
    ]
    if budgets != [nst_quality.TUTORIAL_ITERATIONS] * len(sizes):
        notes.append(
            "Tutorial iterations per size: "
            + ", ".join(f"{s} px: {n}" for s, n in zip(sizes, budgets, strict=True))
            + f" (fewer than {nst_quality.TUTORIAL_ITERATIONS} where the run had to fit the "
            "time available: the target is then an easier, earlier loss)."
        )
    done = [r.size for r in results]
    if done != sizes:
        notes.append(f"Sizes measured so far: {done} of {sizes}.")
    return nst_quality.table(results, notes) + machine_line()


if __name__ == "__main__":
    main()
