"""Time to quality: how long each method takes to reach the loss the tutorial loop reaches.

One content photo (a square crop of the first test photo) and one painting (starry_night) at
each size, on the VGG19 of `--weights` (`imagenet` by default: the real network; `none` gives
the seeded random network). Every method minimises the same objective, the engine's with the
default weights and layers (neural-style's), and every loss in the table is that objective:

- **tutorial**: the loop of the TensorFlow style-transfer tutorial: the image a `tf.Variable`
  in [0, 1], an eager `tf.GradientTape` step (no `tf.function`), `tf.keras.optimizers.Adam`
  with learning rate 0.02, one image at a time. Its target is the loss it reaches after 500
  iterations. Running it eagerly for 500 iterations at every size would take most of the
  benchmark, so its 500-iteration loss comes from the same update (Adam, step 0.02 x 255 grey
  levels) compiled in the engine, and the eager loop is *interleaved* with the engine rows:
  `PROBE` eager steps before every row and after the last. A row's speed-up divides the
  tutorial's seconds (its first step plus 499 times the median of the eager steps timed just
  before and just after the row) by the row's seconds, so load from other work on the machine
  hits both sides of the ratio alike. The eager losses are checked against the compiled ones.
- **engine** rows: `StyleTransferEngine.run` (XLA on, a fresh engine per row, so the trace and
  compile are in the seconds) with `iterations` = the row's cap (a decay schedule spans it),
  stopped as soon as a loss row at the full size is at or below the target. Multi-scale rows
  count only rows at the full size.

`METHODS` are measured at the first size. `variants` of the fastest of them (another start
image, the bfloat16 network, the averaged iterate) follow, then at the other sizes the
`--finalists` fastest methods of the first size.
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
import time
from dataclasses import dataclass, field, replace
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
PROBE = 3  # eager tutorial steps timed before each row (and after the last)
CAP = 300  # iterations at most: beyond this no row can be 3x faster than the tutorial
MIN_SPEEDUP = 3.0  # a row still short of the target at 1/3 of the tutorial's time is stopped
AVERAGE_DECAY = 0.9


@dataclass(frozen=True)
class Method:
    key: str
    name: str
    changes: dict[str, Any] = field(default_factory=dict)
    precision: str = "float32"
    cap: int = CAP


DECAY = {"learning_rate": 20.0, "learning_rate_decay": 0.1}
STEEP = {"learning_rate": 40.0, "learning_rate_decay": 0.05}
METHODS: tuple[Method, ...] = (
    Method("adam10", "Adam lr 10 (neural-style)"),
    Method("adam20d", "Adam lr 20, decay to 0.1", DECAY),
    Method("adam20ds3", "Adam lr 20, decay to 0.1, 3 scales", {**DECAY, "scales": 3}),
    Method("lbfgs", "L-BFGS (neural-style's default)", {"optimizer": "lbfgs"}),
    Method("lbfgs3", "L-BFGS, 3 scales", {"optimizer": "lbfgs", "scales": 3}),
    Method("adam10s3", "Adam lr 10, 3 scales", {"scales": 3}),
    Method("adam20", "Adam lr 20", {"learning_rate": 20.0}),
    Method("adam40d", "Adam lr 40, decay to 0.05", STEEP),
)  # fmt: skip


def variants(base: Method) -> tuple[Method, ...]:
    """The fastest method on the bfloat16 network (a timing row: a few iterations), and started
    from the fast engine's painting or from noise."""
    return (
        replace(base, key=f"{base.key}+bf16", name=f"{base.name}, bfloat16 network",
                precision="bfloat16", cap=40),
        replace(base, key=f"{base.key}+fast", name=f"{base.name}, `--init fast`",
                changes={**base.changes, "init": "fast"}, cap=200),
        replace(base, key=f"{base.key}+noise", name=f"{base.name}, `--init noise`",
                changes={**base.changes, "init": "noise"}, cap=200),
    )  # fmt: skip


@dataclass
class Reached:
    method: str
    iterations: int | None  # None: not reached within the cap
    seconds: float | None  # wall seconds to the target, first iteration included
    warm_seconds: float | None  # without the first iteration (targets, trace, compile)
    best: float  # lowest full-size loss seen
    per_iteration: float  # median seconds of a full-size iteration after the first
    cap: int
    stopped: int | None = None  # iterations run when stopped at the time limit
    floor: float = MIN_SPEEDUP  # the speed-up below which the row was stopped
    tutorial_step: float = float("nan")  # the eager tutorial's step timed around this row
    tutorial_seconds: float = float("nan")  # its 500 iterations at that step time

    @property
    def speedup(self) -> float | None:
        return None if self.seconds is None else self.tutorial_seconds / self.seconds


@dataclass
class Averaged:
    iterations: int
    last: float  # loss of the last iterate before its step, relative to the target
    average: float  # loss of the returned average, relative to the target
    tv_ratio: float  # weighted TV of the average over the last iterate's


@dataclass
class SizeResult:
    size: int
    target: float
    tutorial_first: float
    tutorial_steps: list[float] = field(default_factory=list)
    tutorial_check: float = float("nan")  # largest relative gap, eager vs compiled losses
    rows: list[Reached] = field(default_factory=list)
    averaged: Averaged | None = None


class Tutorial:
    """The tutorial's eager loop on the engine's objective, stepped a few steps at a time."""

    def __init__(self, content: np.ndarray, style: np.ndarray, params: NSTParams) -> None:
        started = time.perf_counter()
        self.model = build_extractor(
            params.weights or "none", params.content_layer, params.style_layers
        )
        outputs = self.model(tf.constant(style[None]), training=False)[:-1]
        self.style_grams = [losses.gram(f) for f in outputs]
        self.content = tf.cast(
            self.model(tf.constant(content[None]), training=False)[-1], tf.float32
        )
        self.image = tf.Variable(content[None] / 255.0)
        self.optimizer = tf.keras.optimizers.Adam(learning_rate=TUTORIAL_LR)
        self.layer_weights = tf.ones(len(params.style_layers))
        self.loss_weights = tf.constant(
            [params.content_weight, params.style_weight, params.tv_weight]
        )
        self.losses: list[float] = []
        self.first = self._step() + (time.perf_counter() - started)  # targets + first step

    def _step(self) -> float:
        started = time.perf_counter()
        with tf.GradientTape() as tape:
            pixels = self.image * 255.0
            parts = losses.objective(
                self.model(pixels, training=False),
                pixels,
                self.content,
                self.style_grams,
                self.layer_weights,
                self.loss_weights,
            )
            loss = tf.reduce_sum(parts[0])
        self.optimizer.apply_gradients([(tape.gradient(loss, self.image), self.image)])
        self.image.assign(tf.clip_by_value(self.image, 0.0, 1.0))
        self.losses.append(float(loss))
        return time.perf_counter() - started

    def steps(self, count: int) -> list[float]:
        return [self._step() for _ in range(count)]  # fmt: skip


class _Stop:
    """Records (seconds, iteration, loss) rows; says stop once a full-size row reaches target."""

    def __init__(self, target: float, full_from: int, limit: float) -> None:
        self.target = target
        self.full_from = full_from
        self.limit = limit
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
        return self.reached is not None or time.perf_counter() - self.started > self.limit


def params_for(size: int, weights: str, **changes: Any) -> NSTParams:
    return NSTParams(size=size, weights=weights, **changes)


def run_method(
    method: Method, job: EngineJob, params: NSTParams, target: float, limit: float
) -> Reached:
    """The method until the target, its cap or `limit` seconds, timed from the call."""
    engine = StyleTransferEngine(params.weights or "none", mixed_precision=method.precision)
    shape = job.content.shape[:2]
    need = min_side((*params.style_layers, params.content_layer))
    scales = schedule(params, [(params.size, round(params.size * shape[1] / shape[0]))], need)
    stop = _Stop(target, sum(s.iterations for s in scales[:-1]) + 1, limit)
    with contextlib.suppress(JobCancelled):  # the target was reached
        engine.run([job], params, on_progress=stop.progress, should_stop=stop.stop)
    full = [loss for _, it, loss in stop.rows if it >= stop.full_from]
    first = stop.rows[0][0] if stop.rows else 0.0
    steps = [b[0] - a[0] for a, b in itertools.pairwise(stop.rows) if a[1] >= stop.full_from]
    per_iteration = statistics.median(steps) if steps else float("nan")
    best = min(full, default=float("nan"))
    if stop.reached is None:
        ran = stop.rows[-1][1] if stop.rows else 0
        stopped = ran if ran < params.iterations else None
        return Reached(
            method.name, None, None, None, best, per_iteration, params.iterations, stopped
        )
    seconds, iteration = stop.reached
    return Reached(
        method.name, iteration, seconds, seconds - first, best, per_iteration, params.iterations
    )


def run_averaged(job: EngineJob, params: NSTParams, target: float) -> Averaged:
    """The method for `params.iterations`, returning the average of its iterates."""
    engine = StyleTransferEngine(params.weights or "none")
    [result] = engine.run([job], replace_params(params, average=AVERAGE_DECAY))
    last = result.losses[-1]
    return Averaged(params.iterations, last.total / target, result.final.total / target,
                    result.final.tv / last.tv)  # fmt: skip


def replace_params(params: NSTParams, **changes: Any) -> NSTParams:
    return params.model_copy(update=changes)


def tutorial_target(
    job: EngineJob, size: int, weights: str, iterations: int
) -> tuple[float, list[float]]:
    """The tutorial update's loss after its iterations, run compiled; and its loss rows."""
    params = params_for(
        size, weights, iterations=iterations, learning_rate=TUTORIAL_LR * 255.0, optimizer="adam"
    )
    [compiled] = StyleTransferEngine(weights).run([job], params)
    # the rows are losses *before* each step; `final` is the loss after the last one
    return compiled.final.total, [row.total for row in compiled.losses]


class SizeRun:
    """One size: the target, then rows interleaved with eager tutorial probes."""

    def __init__(
        self,
        content: np.ndarray,
        style: np.ndarray,
        size: int,
        weights: str,
        iterations: int = TUTORIAL_ITERATIONS,
        target: float | None = None,
        floor: float = MIN_SPEEDUP,
    ) -> None:
        """`target`: the tutorial's loss when another run already computed it (no eager
        check then)."""
        self.job = EngineJob(content, [("starry", style)])
        self.size, self.weights, self.iterations, self.floor = size, weights, iterations, floor
        self.compiled: list[float] = []
        if target is None:
            target, self.compiled = tutorial_target(self.job, size, weights, iterations)
        self.tutorial = Tutorial(content, style, params_for(size, weights))
        self.result = SizeResult(size, target, self.tutorial.first)
        self.probe = self.tutorial.steps(PROBE)
        print(f"{size} px: tutorial target {target:.6g}", flush=True)

    def row(self, method: Method) -> Reached:
        params = params_for(self.size, self.weights, iterations=method.cap, **method.changes)
        estimate = self.tutorial.first + (self.iterations - 1) * statistics.median(self.probe)
        reached = run_method(method, self.job, params, self.result.target, estimate / self.floor)
        reached.floor = self.floor
        after = self.tutorial.steps(PROBE)
        step = statistics.median([*self.probe, *after])
        self.result.tutorial_steps += self.probe
        self.probe = after
        reached.tutorial_step = step
        reached.tutorial_seconds = self.tutorial.first + (self.iterations - 1) * step
        self.result.rows.append(reached)
        self._check()
        print(f"  {method.key}: {reached}", flush=True)
        return reached

    def averaged(self, method: Method, iterations: int) -> None:
        params = params_for(self.size, self.weights, iterations=iterations, **method.changes)
        self.result.averaged = run_averaged(self.job, params, self.result.target)
        print(f"  averaged: {self.result.averaged}", flush=True)

    def _check(self) -> None:
        eager = self.tutorial.losses
        if not self.compiled:
            return
        self.result.tutorial_check = max(
            abs(a - b) / b for a, b in zip(eager, self.compiled, strict=False)
        )


def fastest(rows: list[Reached], methods: tuple[Method, ...], count: int) -> list[Method]:
    """The `count` methods that reached the target in the fewest seconds."""
    done = [(r.seconds, m) for r, m in zip(rows, methods, strict=False) if r.seconds is not None]
    return [m for _, m in sorted(done, key=lambda pair: pair[0])[:count]]
