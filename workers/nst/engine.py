"""The style-transfer engine: many content x style jobs, one optimisation, no side effects.

Planning (scales, sizes, checking a job) lives in `workers.nst.plan`, with no TensorFlow; the
step functions the engine compiles live in `workers.nst.steps`; this module runs them.

`StyleTransferEngine.run` takes jobs that share one `NSTParams` and optimises them together as a
batch tensor. It knows nothing about databases or queues: the caller gives arrays, gets arrays
and loss rows back, and hears about progress through a callback.

Why it is shaped this way:

- **Batching.** Every loss is per image (see `losses`), so a batch gives each job exactly the
  result it would get alone while paying one kernel launch per layer instead of N. Contents of
  different aspect ratios cannot share a tensor: they are grouped by shape, and the groups are
  stepped in lockstep (one step of each group per iteration), so every progress event carries a
  fresh loss row for *every* job and callers can index rows by job position.
- **Reuse.** A style's Gram targets depend only on (style, size, style_scale, layers), so they
  are computed once and kept in an LRU on the engine, shared by every content of a grid and by
  later `run` calls (`style_targets_computed` counts the computations). Content features are
  computed once per content and scale.
- **Speed.** The step (forward, backward, optimiser update) is one `tf.function` compiled with
  XLA (`jit_compile`) per input shape, the `step_cache_size` most recently used kept; loss
  weights and the learning rate are tensors, so new parameter values do not retrace. If XLA
  cannot compile the step, the engine logs it once and runs the same step without XLA.
- **Coarse to fine.** With `scales=S` the image is optimised at size/2^(S-1), ..., size/2, size,
  each scale starting from the previous result upsampled. `iterations` is the total number of
  optimiser steps over all scales (as `NSTParams` documents): each coarser scale gets
  `iterations // (S + 1)` (at least 1) and the finest the rest, at least half of them. A coarse
  scale is skipped when an image would be too small for the deepest VGG layer, and there are
  never more scales than steps.
- **Larger than memory.** With a memory budget (`memory_mb`, from `ATELIER_NST_MEMORY_MB`), a
  group whose images do not fit together is split into smaller groups, and a scale where even
  one image does not fit is computed in overlapping feathered tiles (see `tiles`): one
  optimiser over the whole image, loss and gradient summed tile by tile. If no scale of the
  schedule fits whole, the image is first optimised whole at the largest power-of-two
  reduction that fits, so the tiled scale only refines. Style targets of a style image too
  large for the budget are the pixel-weighted mean of its tiles' Gram matrices.
- **Average of iterates.** With `average=d` the result is the bias-corrected exponential moving
  average (decay `d` per step) of the images of the last scale, not its last iterate: Adam
  leaves high-frequency noise that the average cancels (as crowsonkb's style-transfer-pytorch
  does). Each scale starts from the previous scale's average. `EngineResult.final` holds the
  losses of the image actually returned.
- **Determinism.** The only randomness is the noise init, drawn from `seed` (the same noise for
  every job of a call, so batching does not change results). On CPU a rerun is bitwise equal;
  GPU convolution kernels may differ in the last bits.
- **Mixed precision** (`ATELIER_NST_MIXED_PRECISION=1` for float16 on GPUs, `=bfloat16` for
  bfloat16): the network runs in the low precision, Gram matrices and losses in float32; with
  float16 the gradient is computed on the loss times a static scale of 1024 (then divided
  back) so small float16 gradients do not flush to zero (bfloat16 has float32's range).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from atelier.cache import LRU
from atelier.errors import JobCancelled
from atelier.media import fit_longest, resize_to
from atelier.schemas import NSTParams
from workers.nst import steps
from workers.nst.device import configure_tensorflow, describe_device
from workers.nst.plan import EngineJob, Scale, check_job, needed_side, scaled, schedule
from workers.nst.results import EngineResult, Group, LossRow, ProgressEvent, previews, results
from workers.nst.steps import Evaluate, Optimization
from workers.nst.targets import StyleGrams, initial
from workers.nst.targets import targets as make_targets
from workers.nst.tiles import layout, pixels_for_budget
from workers.nst.vgg import build_extractor, precision_name

log = logging.getLogger(__name__)

MIXED_PRECISION_ENV = "ATELIER_NST_MIXED_PRECISION"
MIXED_PRECISION_LOSS_SCALE = 1024.0
_XLA_ERRORS = (
    tf.errors.InvalidArgumentError,
    tf.errors.UnimplementedError,
    tf.errors.InternalError,
)


class StyleTransferEngine:
    """Holds the network, the compiled steps and the style-target cache of one worker process."""

    def __init__(
        self,
        weights: str,
        jit_compile: bool = True,
        mixed_precision: bool | str | None = None,
        style_cache_size: int = 32,
        memory_mb: float | None = None,
        step_cache_size: int = 8,
    ) -> None:
        """`mixed_precision`: None reads `ATELIER_NST_MIXED_PRECISION` (`1`/`float16` or
        `bfloat16`); `memory_mb`: the activation memory one forward-and-backward pass may use
        (None: unlimited), see `tiles.pixels_for_budget`."""
        configure_tensorflow()
        self.weights = weights
        self.jit_compile = jit_compile
        if mixed_precision is None:
            env = os.environ.get(MIXED_PRECISION_ENV, "").strip().lower()
            mixed_precision = {"1": "float16", "": False, "0": False}.get(env, env)
        self.precision = precision_name(mixed_precision)
        self.mixed_precision = self.precision != "float32"
        self.memory_mb = memory_mb
        self.device = describe_device()
        self._styles = StyleGrams(style_cache_size)
        self._functions: LRU[Any] = LRU(step_cache_size)
        # (optimizer, layers, height, width, batch) announced as compiled (a few small tuples).
        self._compiled: set[tuple[Any, ...]] = set()
        self._loss_scale = MIXED_PRECISION_LOSS_SCALE if self.precision == "float16" else 1.0

    @property
    def style_targets_computed(self) -> int:
        """How many style targets this engine has computed (not taken from its cache)."""
        return self._styles.computed

    def max_pixels(self, params: NSTParams) -> int | None:
        """Input pixels (batch included) one pass may take under the memory budget."""
        if self.memory_mb is None:
            return None
        return pixels_for_budget(self.memory_mb, (*params.style_layers, params.content_layer))

    # -- public ------------------------------------------------------------------------------

    def run(
        self,
        jobs: list[EngineJob],
        params: NSTParams,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_stage: Callable[[str], None] | None = None,
    ) -> list[EngineResult]:
        """Optimise all `jobs` with `params`; results come back in input order.

        `on_stage` hears of the slow first-time steps before they start (loading the network,
        compiling the step for a new image size), which report no iterations for seconds.

        Raises InputError (an image too small for the layers, a style_blend of the wrong
        length), WeightsUnavailable, or JobCancelled when `should_stop()` turns true.
        """
        if not jobs:
            return []
        stage = on_stage or (lambda _text: None)
        if not self._functions:
            stage(f"loading VGG19, weights {self.weights}")
        model = self._model(params)
        need = needed_side(params)
        budget = self.max_pixels(params)
        groups = self._groups(jobs, params, budget)
        scales = schedule(params, [group.shape for group in groups], need, budget)
        total = sum(scale.iterations for scale in scales)
        rows: list[list[LossRow]] = [[] for _ in jobs]
        iteration = 0
        runs: list[Optimization] = []
        for scale in scales:
            self._announce(groups, scale, params, stage)
            runs = [
                self._timed(g, self._start, g, scale, params, model, need, budget) for g in groups
            ]
            for _ in range(scale.iterations):
                if should_stop is not None and should_stop():
                    raise JobCancelled(f"cancelled at iteration {iteration} of {total}")
                iteration += 1
                self._step(groups, runs, rows, iteration)
                shown = None
                if params.preview_every and iteration % params.preview_every == 0:
                    shown = previews(groups, runs, len(jobs), params)
                if on_progress is not None:
                    on_progress(ProgressEvent(iteration, total, [r[-1] for r in rows], shown))
            for group, opt in zip(groups, runs, strict=True):
                group.image = opt.image().numpy()
        for group, opt in zip(groups, runs, strict=True):
            group.final = self._timed(group, opt.losses)
        return results(groups, rows, params, total, (self.device, self.weights))

    def _announce(
        self, groups: list[Group], scale: Scale, params: NSTParams, stage: Callable[[str], None]
    ) -> None:
        """Tell `stage` of every step about to be compiled for the first time."""
        for group in groups:
            height, width = scaled(group.shape, scale.divisor)
            built = (params.optimizer, params.content_layer, params.style_layers)
            if (*built, height, width, len(group.jobs)) not in self._compiled:
                self._compiled.add((*built, height, width, len(group.jobs)))
                stage(f"compiling for {width}×{height}")  # noqa: RUF001

    def _step(
        self,
        groups: list[Group],
        runs: list[Optimization],
        rows: list[list[LossRow]],
        iteration: int,
    ) -> None:
        """One iteration of every group, each job's losses appended to its rows."""
        for group, opt in zip(groups, runs, strict=True):
            parts = self._timed(group, opt.step)
            group.steps += 1
            for k, index in enumerate(group.indices):
                rows[index].append(LossRow(iteration, *(float(p) for p in parts[:, k])))

    # -- preparation -------------------------------------------------------------------------

    def _model(self, params: NSTParams) -> Any:
        return build_extractor(
            self.weights, params.content_layer, params.style_layers, self.precision
        )

    def _groups(self, jobs: list[EngineJob], params: NSTParams, budget: int | None) -> list[Group]:
        by_shape: dict[tuple[int, int], tuple[list[int], list[EngineJob], list[np.ndarray]]] = {}
        for index, job in enumerate(jobs):
            if job.content.ndim != 3 or job.content.shape[2] != 3:
                raise ValueError(f"content must be HxWx3, got shape {job.content.shape}")
            check_job(job, params)
            height, width = fit_longest(*job.content.shape[:2], params.size)
            content = resize_to(job.content.astype(np.float32), height, width)
            members = by_shape.setdefault((height, width), ([], [], []))
            members[0].append(index)
            members[1].append(job)
            members[2].append(content)
        groups = []
        for (height, width), (indices, members, contents) in by_shape.items():
            chunk = len(members) if budget is None else max(1, budget // (height * width))
            for at in range(0, len(members), chunk):
                part = slice(at, at + chunk)
                groups.append(Group(indices[part], members[part], np.stack(contents[part])))
        return groups

    def _start(
        self,
        group: Group,
        scale: Scale,
        params: NSTParams,
        model: Any,
        need: int,
        budget: int | None,
    ) -> Optimization:
        height, width = scaled(group.shape, scale.divisor)
        contents = group.contents
        if scale.divisor > 1:
            contents = np.stack([resize_to(c, height, width) for c in group.contents])
        x0 = initial(group.image, contents, group.jobs, params)
        tiles = None
        if budget is not None and len(group.jobs) * height * width > budget:
            tiles = layout(height, width, budget, need)
        targets = make_targets(
            self._styles, group.jobs, contents, tiles, params, model, need, budget
        )
        key = ("grad", params.content_layer, params.style_layers)
        if tiles is None:
            evaluate: Evaluate = lambda x: self._call(  # noqa: E731
                key, self._value_and_grad, x, *targets.args()
            )
        else:
            evaluate = steps.tiled(
                self._call, key, self._value_and_grad, targets, tiles, (height, width)
            )
        if params.optimizer == "lbfgs":
            return steps.lbfgs(evaluate, x0, contents, params)
        step, current = steps.adam(
            self._call,
            self._adam_step,
            params,
            targets,
            x0,
            evaluate if tiles else None,
            scale.iterations,
        )
        return Optimization(contents, step, current, evaluate, params.average)

    # -- compiled steps ----------------------------------------------------------------------

    def _value_and_grad(self, model: Any) -> Callable[..., Any]:
        return steps.value_and_grad(model, self._loss_scale)

    def _adam_step(self, model: Any) -> Callable[..., Any]:
        return steps.adam_step(model, self._loss_scale)

    def _call(
        self, key: tuple[Any, ...], make: Callable[[Any], Callable[..., Any]], *args: Any
    ) -> Any:
        """Run the compiled function `key` for the shape of the image (`args[0]`), building it
        on first use; fall back from XLA once."""
        content_layer, style_layers = key[1], key[2]

        def build() -> Any:
            model = build_extractor(self.weights, content_layer, style_layers, self.precision)
            return tf.function(make(model), jit_compile=self.jit_compile)

        function = self._functions.get_or_make((*key, tuple(args[0].shape)), build)
        try:
            return function(*args)
        except _XLA_ERRORS as error:
            if not self.jit_compile:
                raise
            log.warning("XLA could not compile the NST step (%s); continuing without XLA", error)
            self.jit_compile = False
            self._functions.clear()
            return self._call(key, make, *args)

    # -- timing ------------------------------------------------------------------------------

    @staticmethod
    def _timed(group: Group, function: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            group.seconds += time.perf_counter() - started
