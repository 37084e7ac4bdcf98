"""Style-transfer throughput: the engine against a plain one-image-at-a-time loop, same run.

Each row is a grid job set of `batch` distinct contents x 1 style (square crops of the content
photos, so the engine can stack them into one tensor) at `size` px, run twice in the same
process on the same VGG19 (`--weights`: the ImageNet weights by default, `none` for the seeded
random network; the weights' values do not change a step's cost):

- baseline: the loop of the TensorFlow style-transfer tutorial: one image at a time, the style
  and content targets recomputed for every job, the image a `tf.Variable`, an eager
  `tf.GradientTape` step (no `tf.function`), `tf.keras.optimizers.Adam`;
- engine: `StyleTransferEngine.run` on the whole set, a fresh engine per row (no compiled step,
  empty style cache), XLA on, as a worker runs it.

Figures are seconds per optimiser iteration per image, the median of the timed iterations after
the first: the first iteration (targets, and for the engine the trace and the XLA compile) is
reported apart. The speed-up divides the baseline's figure by the engine's at the same size and
batch. Every row also gives the engine step's achieved GFLOP/s (`bench.flops.step_flops`:
the layers used, forward and backward) and its share of the machine's matmul peak, measured in
the same run by a large `tf.matmul` just before and after the engine (the better of the two).
On a GPU the engine rows also give iterations/s and the share of the card's dense TF32 peak.

`python -m bench.nst` writes the `nst` section of BENCHMARKS.md. `--quick` (64 px, batches 1
and 2, 2 iterations) only prints the table: figures from so few steps are too noisy to record.

The time-to-quality tables are `bench.time_to_quality`'s.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from atelier.schemas import NSTParams
from bench.flops import matmul_gflops, step_flops
from bench.nst_images import STYLE, distinct_contents, style_image
from bench.report import machine_line, write_section
from workers.nst.device import configure_tensorflow
from workers.nst.engine import EngineJob, StyleTransferEngine
from workers.nst.vgg import build_extractor

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
    flops_per_image_step: float  # `bench.flops.step_flops`: forward and backward
    matmul_gflops: float  # the machine's matmul peak, measured in the same run

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

    @property
    def engine_gflops(self) -> float:
        return self.flops_per_image_step / self.engine_s / 1e9

    @property
    def matmul_share(self) -> float:
        """The engine step's achieved GFLOP/s over the large matmul's."""
        return self.engine_gflops / self.matmul_gflops


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
    model = build_extractor(
        params.weights or "none", params.content_layer, params.style_layers, mixed_precision
    )
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
    engine = StyleTransferEngine(params.weights or "none", mixed_precision=mixed_precision)
    jobs = [EngineJob(content, [(STYLE, style)]) for content in contents]
    stamps = [time.perf_counter()]
    engine.run(jobs, params, on_progress=lambda _: stamps.append(time.perf_counter()))
    return [b - a for a, b in itertools.pairwise(stamps)], engine.jit_compile


def measure_row(size: int, batch: int, iterations: int, mixed_precision: bool, weights: str) -> Row:
    params = NSTParams(size=size, iterations=iterations + 1, weights=weights)
    contents = distinct_contents(batch, size)
    style = style_image(size)
    baseline = [
        baseline_job(content, style, params, iterations + 1, mixed_precision)
        for content in contents
    ]
    peak = matmul_gflops()
    engine, xla = engine_set(contents, style, params, mixed_precision)
    peak = max(peak, matmul_gflops())  # before and after the engine: the better of the two
    return Row(
        size=size,
        batch=batch,
        iterations=iterations,
        baseline_s=statistics.median(s for job in baseline for s in job[1:]),
        engine_s=statistics.median(engine[1:]) / batch,
        baseline_first_s=statistics.fmean(job[0] for job in baseline),
        engine_first_s=engine[0],
        engine_xla=xla,
        flops_per_image_step=step_flops(size, size, params.content_layer, params.style_layers),
        matmul_gflops=peak,
    )


def measure(
    sizes: list[int],
    batches: list[int],
    iterations: int,
    mixed_precision: bool = False,
    weights: str = "none",
) -> list[Row]:
    """Every (size, batch) row, printed as it is done (a full CPU run takes minutes)."""
    configure_tensorflow()
    rows = []
    for size in sizes:
        for batch in batches:
            row = measure_row(size, batch, iterations, mixed_precision, weights)
            print(
                f"{size} px x{batch}: baseline {row.baseline_s:.3f} s/it/img, "
                f"engine {row.engine_s:.3f} s/it/img ({row.speedup:.2f}x, "
                f"{row.engine_gflops:.0f} GFLOP/s, {100 * row.matmul_share:.0f}% of matmul), "
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
        "baseline first it. s/img | engine first it. s (compile) | engine GFLOP/s | "
        "share of matmul peak |"
    )
    rule = "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    if gpu:
        head += " engine it/s | engine TFLOP/s | TF32 peak share |"
        rule += " ---: | ---: | ---: |"
    lines += [head, rule]
    for row in rows:
        line = (
            f"| {row.size} | {row.batch} | {row.baseline_s:.3g} | {row.engine_s:.3g} | "
            f"{row.speedup:.2f}x | {row.baseline_first_s:.2f} | {row.engine_first_s:.2f}"
            f"{'' if row.engine_xla else ' (no XLA)'} | {row.engine_gflops:.1f} | "
            f"{100 * row.matmul_share:.0f}% |"
        )
        if gpu:
            share = "n/a" if peak is None else f"{100 * row.engine_tflops / peak:.1f}%"
            line += f" {row.engine_iterations_per_second:.1f} | {row.engine_tflops:.1f} | {share} |"
        lines.append(line)
    lines += ["", *[f"- {note}" for note in notes], "", machine_line()]
    return "\n".join(lines) + "\n"


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _notes(
    args: argparse.Namespace, iterations: int, load: tuple[float, ...], gpu: str | None,
    peak: float | None,
) -> list[str]:  # fmt: skip
    notes = [
        f"Each row: batch x distinct {STYLE.split('.')[0]}-styled square crops of the content "
        f"photos, {iterations} timed Adam iterations per image after the first, median; "
        f"{'ImageNet weights' if args.weights == 'imagenet' else 'weights ' + args.weights} "
        "(the same network on both sides), default `NSTParams` "
        "(content layer block4_conv2, 5 style layers).",
        "Baseline: one image at a time, style and content targets recomputed per job, eager "
        "`GradientTape` step on a `tf.Variable` with `tf.keras.optimizers.Adam`, as in the "
        "TensorFlow tutorial. Its first iteration (per image) includes that job's targets.",
        "Engine: `StyleTransferEngine.run` on the whole set, a fresh engine per row, XLA on; "
        "its first iteration covers the content and style targets, the trace and the XLA "
        "compile, paid once per input shape by a long-lived worker.",
        "GFLOP/s: `bench.flops.step_flops` per image (every convolution up to the deepest "
        "layer used and the style Gram matrices, forward and backward; element-wise work "
        "left out) over the engine's s/it/img. Matmul peak: the best of 5 float32 2048x2048 "
        "`tf.matmul`s, timed just before and just after the engine in the same row.",
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
            "TFLOP/s from the same FLOP count; "
            + (
                f"TF32 dense peak {peak:g} TFLOP/s."
                if peak is not None
                else "the card's TF32 peak is unknown: pass --device-peak-tflops."
            )
        )
    return notes


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
    parser.add_argument("--weights", default="imagenet", help="imagenet, none or a .h5 path")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    gpu = gpu_name()
    if args.quick:
        sizes, batches, iterations = [64], [1, 2], 2
    else:
        sizes, batches = ([128, 256, 512] if gpu else [128, 256]), ([1, 2, 4, 8] if gpu else [1, 4])
        iterations = 20 if gpu else 4
    sizes = args.sizes or sizes
    batches = args.batches or batches
    iterations = args.iterations or iterations
    peak = tf32_peak(gpu, args.device_peak_tflops) if gpu else None
    rows = measure(sizes, batches, iterations, args.mixed_precision, args.weights)
    notes = _notes(args, iterations, load, gpu, peak)
    text = table(rows, gpu, peak, notes)
    print(text)
    if not args.quick:
        write_section("nst", text)


if __name__ == "__main__":
    main()
