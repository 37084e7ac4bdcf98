"""Time to quality: how long each method takes to reach the loss the tutorial loop reaches.

One content photo (a square crop of the first test photo) and one painting (starry_night) at
each size, on
the random-init VGG19 (`ATELIER_VGG_WEIGHTS=none`: no ImageNet weights here, so the losses are
those of a random network; the ratios are what carry over). Every method minimises the same
objective, the engine's with the default `NSTParams` (neural-style's weights and layers), from
the content image, and every loss in the table is that objective:

- **tutorial**: the loop of the TensorFlow style-transfer tutorial: the image a `tf.Variable`
  in [0, 1], an eager `tf.GradientTape` step (no `tf.function`), `tf.keras.optimizers.Adam`
  with learning rate 0.02, one image at a time. Its target is the loss it reaches after 500
  iterations. Running it eagerly for 500 iterations at every size would take most of the
  benchmark, so it runs eagerly for `--tutorial-probe` iterations to time it (and to check its
  losses), and its 500-iteration loss comes from the same update (Adam, step 0.02 x 255 grey
  levels) compiled in the engine. Its seconds are its first iteration plus 499 times its
  median eager iteration.
- **engine** rows: `StyleTransferEngine.run` (XLA on, a fresh engine per row, so the trace and
  compile are in the seconds), stopped as soon as a loss row at the full size is at or below
  the target; at most 500 iterations. Multi-scale rows count only rows at the full size.

`METHODS` lists the engine rows: one `Method` per row, `changes` are `NSTParams` fields, so a
new initialisation or optimiser is one more line.

The averaged iterate (`average`) is measured apart: Adam for as many iterations as it needed
to reach the target, returning the last iterate or the average, and the loss and TV of the
image returned (`EngineResult.final`).
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from atelier.errors import JobCancelled
from atelier.schemas import NSTParams
from workers.nst import losses
from workers.nst.engine import EngineJob, ProgressEvent, StyleTransferEngine, schedule
from workers.nst.vgg import build_extractor, min_side

TUTORIAL_LR = 0.02
TUTORIAL_ITERATIONS = 500
AVERAGE_DECAYS = (0.9, 0.99)
AVERAGE_ITERATIONS = 100  # at most, to fit the benchmark on a small CPU


@dataclass(frozen=True)
class Method:
    name: str
    changes: dict[str, Any] = field(default_factory=dict)
    precision: str = "float32"
    cap: int | None = None  # fewer iterations than the tutorial's: a timing row


METHODS: tuple[Method, ...] = (
    Method("engine, Adam (lr 10)"),
    Method("engine, L-BFGS", {"optimizer": "lbfgs"}),
    Method("engine, Adam, 3 scales", {"scales": 3}),
    Method("engine, L-BFGS, 3 scales", {"optimizer": "lbfgs", "scales": 3}),
    Method("engine, Adam, bfloat16 network", precision="bfloat16", cap=60),
    Method("engine, Adam, from the fast engine's result", {"init": "fast"}),
)


@dataclass
class Reached:
    method: str
    iterations: int | None  # None: not reached within the cap
    seconds: float | None
    warm_seconds: float | None  # without the first iteration (targets, trace, compile)
    best: float  # lowest full-size loss seen
    per_iteration: float  # median seconds of a full-size iteration after the first


@dataclass
class Averaged:
    decay: float  # 0: the last iterate
    iterations: int
    total: float
    tv: float  # the weighted TV term of the returned image


@dataclass
class SizeResult:
    size: int
    target: float
    tutorial: Reached
    tutorial_check: float  # largest relative gap of eager vs compiled tutorial losses
    rows: list[Reached]
    averaged: list[Averaged]


def _params(size: int, **changes: Any) -> NSTParams:
    return NSTParams(size=size, weights="none", **changes)


def tutorial_probe(
    content: np.ndarray, style: np.ndarray, params: NSTParams, steps: int
) -> tuple[list[float], list[float]]:
    """The tutorial's eager loop on the engine's objective: seconds and loss of each step."""
    model = build_extractor("none", params.content_layer, params.style_layers)
    started = time.perf_counter()
    style_grams = [losses.gram(f) for f in model(tf.constant(style[None]), training=False)[:-1]]
    content_target = tf.cast(model(tf.constant(content[None]), training=False)[-1], tf.float32)
    image = tf.Variable(content[None] / 255.0)
    optimizer = tf.keras.optimizers.Adam(learning_rate=TUTORIAL_LR)
    layer_weights = tf.ones(len(params.style_layers))
    loss_weights = tf.constant([params.content_weight, params.style_weight, params.tv_weight])
    seconds, totals = [], []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            pixels = image * 255.0
            parts = losses.objective(
                model(pixels, training=False),
                pixels,
                content_target,
                style_grams,
                layer_weights,
                loss_weights,
            )
            loss = tf.reduce_sum(parts[0])
        optimizer.apply_gradients([(tape.gradient(loss, image), image)])
        image.assign(tf.clip_by_value(image, 0.0, 1.0))
        totals.append(float(loss))
        now = time.perf_counter()
        seconds.append(now - started)
        started = now
    return seconds, totals


class _Stop:
    """Records (seconds, iteration, loss) rows; says stop once a full-size row reaches target."""

    def __init__(self, target: float, full_from: int) -> None:
        self.target = target
        self.full_from = full_from
        self.started = time.perf_counter()
        self.rows: list[tuple[float, int, float]] = []
        self.reached: tuple[float, int] | None = None

    def progress(self, event: ProgressEvent) -> None:
        now = time.perf_counter() - self.started
        loss = event.losses[0].total
        self.rows.append((now, event.iteration, loss))
        if self.reached is None and event.iteration >= self.full_from and loss <= self.target:
            self.reached = (now, event.iteration)

    def stop(self) -> bool:
        return self.reached is not None


def run_method(method: Method, job: EngineJob, size: int, target: float, cap: int) -> Reached:
    params = _params(size, iterations=min(cap, method.cap or cap), **method.changes)
    engine = StyleTransferEngine("none", mixed_precision=method.precision)
    need = min_side((*params.style_layers, params.content_layer))
    shape = job.content.shape[:2]
    scales = schedule(params, [(size, round(size * shape[1] / shape[0]))], need)
    stop = _Stop(target, full_from=sum(s.iterations for s in scales[:-1]) + 1)
    with contextlib.suppress(JobCancelled):  # the target was reached
        engine.run([job], params, on_progress=stop.progress, should_stop=stop.stop)
    full = [loss for _, it, loss in stop.rows if it >= stop.full_from]
    first = stop.rows[0][0] if stop.rows else 0.0
    steps = [b[0] - a[0] for a, b in itertools.pairwise(stop.rows) if a[1] >= stop.full_from]
    per_iteration = statistics.median(steps) if steps else float("nan")
    best = min(full, default=float("nan"))
    if stop.reached is None:
        return Reached(method.name, None, None, None, best, per_iteration)
    seconds, iteration = stop.reached
    return Reached(method.name, iteration, seconds, seconds - first, best, per_iteration)


def run_averaged(job: EngineJob, size: int, iterations: int) -> list[Averaged]:
    engine = StyleTransferEngine("none")
    out = []
    for decay in (0.0, *AVERAGE_DECAYS):
        [result] = engine.run([job], _params(size, iterations=iterations, average=decay))
        out.append(Averaged(decay, iterations, result.final.total, result.final.tv))
    return out


def measure_size(
    content: np.ndarray,
    style: np.ndarray,
    size: int,
    probe: int,
    iterations: int,
    methods: tuple[Method, ...],
    averaged: bool,
) -> SizeResult:
    job = EngineJob(content, [("starry", style)])
    params = _params(size)
    seconds, eager = tutorial_probe(content, style, params, probe)
    [compiled] = StyleTransferEngine("none").run(
        [job], _params(size, iterations=iterations, learning_rate=TUTORIAL_LR * 255.0)
    )
    totals = [row.total for row in compiled.losses]
    check = max(abs(a - b) / b for a, b in zip(eager, totals, strict=False))
    # the loss after the last step: the compiled run's rows are losses *before* each step
    target = compiled.final.total
    per_step = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
    tutorial_seconds = seconds[0] + (iterations - 1) * per_step
    tutorial = Reached(
        "tutorial (eager, Adam 0.02)",
        iterations,
        tutorial_seconds,
        (iterations - 1) * per_step,
        target,
        per_step,
    )
    print(f"{size} px: tutorial target {target:.6g} ({tutorial_seconds:.0f} s)", flush=True)
    rows = []
    for method in methods:
        row = run_method(method, job, size, target, iterations)
        print(f"  {method.name}: {row}", flush=True)
        rows.append(row)
    averages: list[Averaged] = []
    adam = rows[0]
    if averaged:
        averages = run_averaged(job, size, min(adam.iterations or iterations, AVERAGE_ITERATIONS))
        print(f"  average of iterates: {averages}", flush=True)
    return SizeResult(size, target, tutorial, check, rows, averages)


def _cell(value: float | None, digits: str = ".0f") -> str:
    return "not reached" if value is None else format(value, digits)


def table(results: list[SizeResult], notes: list[str]) -> str:
    lines = [
        "## Neural style transfer: time to quality",
        "",
        "Seconds and iterations to reach the loss the tutorial loop reaches after its "
        "iterations (the tutorial row), one image, on CPU, random-init VGG19 (no ImageNet "
        "weights here: the losses are a random network's; the ratios are what the table is "
        "for). Speed-up: the tutorial's seconds over the row's, in the same run.",
        "",
        "| size | method | iterations | seconds | warm seconds | speed-up | s/iteration | "
        "lowest loss / target |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        for row in [result.tutorial, *result.rows]:
            speedup = (
                "n/a" if row.seconds is None else f"{result.tutorial.seconds / row.seconds:.1f}x"  # type: ignore[operator]
            )
            lines.append(
                f"| {result.size} | {row.method} | {_cell(row.iterations, 'd')} | "
                f"{_cell(row.seconds)} | {_cell(row.warm_seconds)} | {speedup} | "
                f"{row.per_iteration:.3f} | {row.best / result.target:.3f} |"
            )
    averaged = [r for r in results if r.averaged]
    if averaged:
        lines += [
            "",
            f"Average of iterates (Adam, as many iterations as it needed above, at most "
            f"{AVERAGE_ITERATIONS}): loss and "
            "weighted TV of the returned image, relative to the last iterate's.",
            "",
            "| size | iterations | returned image | total loss | TV loss |",
            "| ---: | ---: | --- | ---: | ---: |",
        ]
        for result in averaged:
            base = result.averaged[0]
            for entry in result.averaged:
                what = "last iterate" if entry.decay == 0 else f"average, decay {entry.decay:g}"
                lines.append(
                    f"| {result.size} | {entry.iterations} | {what} | "
                    f"{entry.total / base.total:.3f} | {entry.tv / base.tv:.3f} |"
                )
    lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"
