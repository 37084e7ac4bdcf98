"""The style-transfer engine: many content x style jobs, one optimisation, no side effects.

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
  each scale starting from the previous result upsampled. `iterations` are run at the finest
  scale (as `NSTParams` documents) and every coarser scale runs `iterations // 2` (at least 1):
  a coarse step costs a quarter of the next finer one, so S scales cost about 1.17x the finest
  alone. A coarse scale is skipped when an image would be too small for the deepest VGG layer.
- **Determinism.** The only randomness is the noise init, drawn from `seed` (the same noise for
  every job of a call, so batching does not change results). On CPU a rerun is bitwise equal;
  GPU convolution kernels may differ in the last bits.
- **Mixed precision** (`ATELIER_NST_MIXED_PRECISION=1`, for GPUs): the network runs in float16,
  Gram matrices and losses in float32, and the gradient is computed on the loss times a static
  scale of 1024 (then divided back) so small float16 gradients do not flush to zero.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from atelier.errors import InputError, JobCancelled
from atelier.media import fit_longest, resize_to
from atelier.schemas import NSTParams
from workers.cache import LRU
from workers.nst import losses
from workers.nst.colors import keep_content_colors
from workers.nst.device import configure_tensorflow, describe_device
from workers.nst.optimizers import LBFGS, adam_update
from workers.nst.vgg import build_extractor, min_side

log = logging.getLogger(__name__)

MIXED_PRECISION_ENV = "ATELIER_NST_MIXED_PRECISION"
MIXED_PRECISION_LOSS_SCALE = 1024.0
_XLA_ERRORS = (
    tf.errors.InvalidArgumentError,
    tf.errors.UnimplementedError,
    tf.errors.InternalError,
)


@dataclass
class EngineJob:
    """One content image (float32 HxWx3, 0-255) and its style images, each with a cache key
    (the style file's sha256)."""

    content: np.ndarray
    styles: list[tuple[str, np.ndarray]]


class LossRow(NamedTuple):
    """Losses of one job at one iteration, weighted (content + style + tv == total)."""

    iteration: int
    total: float
    content: float
    style: float
    tv: float


@dataclass
class EngineResult:
    image: np.ndarray  # uint8 HxWx3
    losses: list[LossRow]  # one row per iteration, all scales, iteration counted from 1
    seconds: float  # wall time of the job's shape group (its jobs ran together)
    iterations_per_second: float  # optimiser iterations of the group per second
    device: str
    weights: str


@dataclass
class ProgressEvent:
    iteration: int  # 1..of, across all scales
    of: int
    losses: list[LossRow]  # the latest row of every job, in input order
    previews: list[np.ndarray] | None  # uint8 images in input order when preview_every hits


@dataclass(frozen=True)
class Scale:
    divisor: int
    iterations: int


def schedule(params: NSTParams, shapes: list[tuple[int, int]], need: int) -> list[Scale]:
    """Coarse-to-fine scales (see the module docstring); coarse ones too small are dropped."""
    scales = []
    for level in range(params.scales - 1, 0, -1):
        divisor = 2**level
        if all(min(_scaled(shape, divisor)) >= need for shape in shapes):
            scales.append(Scale(divisor, max(1, params.iterations // 2)))
    return [*scales, Scale(1, params.iterations)]


def _scaled(shape: tuple[int, int], divisor: int) -> tuple[int, int]:
    return max(1, round(shape[0] / divisor)), max(1, round(shape[1] / divisor))


def _style_size(rows: int, cols: int, longest: int, need: int) -> tuple[int, int]:
    """The style image's (height, width) with its longest side `longest`, enlarged if its
    shortest side would be too small for the network (coarse scales, small style_scale)."""
    height, width = fit_longest(rows, cols, longest)
    if min(height, width) < need:
        factor = need / min(rows, cols)
        height, width = max(need, math.ceil(rows * factor)), max(need, math.ceil(cols * factor))
    if max(height, width) > 8 * max(longest, need):
        raise InputError(f"the style image ({cols}x{rows}) is too elongated to use")
    return height, width


def _style_at(image: np.ndarray, longest: int, need: int) -> np.ndarray:
    """The style image at `_style_size`."""
    height, width = _style_size(*image.shape[:2], longest, need)
    return resize_to(image.astype(np.float32), height, width)


def check_job(job: EngineJob, params: NSTParams) -> None:
    """Raise InputError if `job` cannot run with `params`, at any scale it would use alone.

    A batch runs a subset of those scales (see `schedule`), so a job that passes runs in any
    batch: callers check each job first and fail the bad ones alone.
    """
    if not job.styles:
        raise InputError("a style transfer job needs at least one style image")
    if params.style_blend is not None and len(params.style_blend) != len(job.styles):
        raise InputError(
            f"style_blend has {len(params.style_blend)} weights for {len(job.styles)} style images"
        )
    need = min_side((*params.style_layers, params.content_layer))
    height, width = fit_longest(*job.content.shape[:2], params.size)
    if min(height, width) < need:
        raise InputError(
            f"the content image becomes {width}x{height} at size {params.size}; its "
            f"shortest side must be at least {need} px to reach the chosen VGG layers "
            "(raise `size` or use a less elongated image)"
        )
    for scale in schedule(params, [(height, width)], need):
        longest = max(_scaled((height, width), scale.divisor))
        for _, image in job.styles:
            _style_size(*image.shape[:2], max(1, round(longest * params.style_scale)), need)


def _to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


@dataclass
class _Group:
    """Jobs whose contents have the same shape at the requested size."""

    indices: list[int]
    jobs: list[EngineJob]
    contents: np.ndarray  # (B, H, W, 3) at the finest scale
    image: np.ndarray | None = None  # latest result (B, h, w, 3), carried between scales
    seconds: float = 0.0
    steps: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.contents.shape[1], self.contents.shape[2]


@dataclass
class _Targets:
    content: tf.Tensor  # (B, h, w, C) content-layer features
    styles: tuple[tf.Tensor, ...]  # per style layer (B, C, C) blended Gram targets
    layer_weights: tf.Tensor
    loss_weights: tf.Tensor


@dataclass
class _Optimization:
    """One group at one scale: its targets, image and optimiser state."""

    contents: np.ndarray  # (B, h, w, 3) at this scale, for previews in preserved colours
    step: Callable[[], np.ndarray]  # runs one iteration, returns the (4, B) losses before it
    image: Callable[[], tf.Tensor]


class StyleTransferEngine:
    """Holds the network, the compiled steps and the style-target cache of one worker process."""

    def __init__(
        self,
        weights: str,
        jit_compile: bool = True,
        mixed_precision: bool | None = None,
        style_cache_size: int = 32,
        step_cache_size: int = 8,
    ) -> None:
        configure_tensorflow()
        self.weights = weights
        self.jit_compile = jit_compile
        self.mixed_precision = (
            os.environ.get(MIXED_PRECISION_ENV, "") == "1"
            if mixed_precision is None
            else mixed_precision
        )
        self.device = describe_device()
        self.style_targets_computed = 0
        self._style_cache: OrderedDict[tuple[Any, ...], list[tf.Tensor]] = OrderedDict()
        self._style_cache_size = style_cache_size
        self._functions: LRU[Any] = LRU(step_cache_size)
        self._loss_scale = MIXED_PRECISION_LOSS_SCALE if self.mixed_precision else 1.0

    # -- public ------------------------------------------------------------------------------

    def run(
        self,
        jobs: list[EngineJob],
        params: NSTParams,
        on_progress: Callable[[ProgressEvent], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[EngineResult]:
        """Optimise all `jobs` with `params`; results come back in input order.

        Raises InputError (an image too small for the layers, a style_blend of the wrong
        length), WeightsUnavailable, or JobCancelled when `should_stop()` turns true.
        """
        if not jobs:
            return []
        model = build_extractor(
            self.weights, params.content_layer, params.style_layers, self.mixed_precision
        )
        need = min_side((*params.style_layers, params.content_layer))
        groups = self._groups(jobs, params)
        scales = schedule(params, [group.shape for group in groups], need)
        total = sum(scale.iterations for scale in scales)
        rows: list[list[LossRow]] = [[] for _ in jobs]
        iteration = 0
        for scale in scales:
            runs = [self._timed(g, self._start, g, scale, params, model, need) for g in groups]
            for _ in range(scale.iterations):
                if should_stop is not None and should_stop():
                    raise JobCancelled(f"cancelled at iteration {iteration} of {total}")
                iteration += 1
                for group, opt in zip(groups, runs, strict=True):
                    parts = self._timed(group, opt.step)
                    group.steps += 1
                    for k, index in enumerate(group.indices):
                        rows[index].append(LossRow(iteration, *(float(p) for p in parts[:, k])))
                previews = None
                if params.preview_every and iteration % params.preview_every == 0:
                    previews = self._previews(groups, runs, len(jobs), params)
                if on_progress is not None:
                    on_progress(ProgressEvent(iteration, total, [r[-1] for r in rows], previews))
            for group, opt in zip(groups, runs, strict=True):
                group.image = opt.image().numpy()
        return self._results(groups, rows, params, len(jobs))

    # -- preparation -------------------------------------------------------------------------

    def _groups(self, jobs: list[EngineJob], params: NSTParams) -> list[_Group]:
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
        return [
            _Group(indices, members, np.stack(contents))
            for indices, members, contents in by_shape.values()
        ]

    def _start(
        self, group: _Group, scale: Scale, params: NSTParams, model: Any, need: int
    ) -> _Optimization:
        height, width = _scaled(group.shape, scale.divisor)
        contents = group.contents
        if scale.divisor > 1:
            contents = np.stack([resize_to(c, height, width) for c in group.contents])
        x0 = self._initial(group, contents, params)
        content_features = model(tf.constant(contents), training=False)[-1]
        longest = max(height, width)
        per_job = [
            losses.blend(
                [
                    self._style_grams(key, image, longest, params, model, need)
                    for key, image in job.styles
                ],
                params.style_blend or [1.0] * len(job.styles),
            )
            for job in group.jobs
        ]
        targets = _Targets(
            content=tf.cast(content_features, tf.float32),
            styles=tuple(tf.stack(layer) for layer in zip(*per_job, strict=True)),
            layer_weights=tf.constant(
                params.style_layer_weights or [1.0] * len(params.style_layers), tf.float32
            ),
            loss_weights=tf.constant(
                [params.content_weight, params.style_weight, params.tv_weight], tf.float32
            ),
        )
        if params.optimizer == "lbfgs":
            return self._lbfgs(params, targets, contents, x0)
        return self._adam(params, targets, contents, x0)

    def _initial(self, group: _Group, contents: np.ndarray, params: NSTParams) -> tf.Tensor:
        height, width = contents.shape[1:3]
        if group.image is not None:
            return tf.constant(np.stack([resize_to(img, height, width) for img in group.image]))
        if params.init == "noise":
            rng = np.random.default_rng(params.seed)
            noise = rng.uniform(0.0, 255.0, size=(height, width, 3)).astype(np.float32)
            return tf.constant(np.repeat(noise[None], len(group.jobs), axis=0))
        if params.init == "fast":
            from workers.fast.init import fast_starts

            return tf.constant(fast_starts(contents, [job.styles for job in group.jobs], params))
        if params.init == "style":
            first = [
                resize_to(job.styles[0][1].astype(np.float32), height, width) for job in group.jobs
            ]
            return tf.constant(np.stack(first))
        return tf.constant(contents)

    def _style_grams(
        self,
        key: str,
        image: np.ndarray,
        longest: int,
        params: NSTParams,
        model: Any,
        need: int,
    ) -> list[tf.Tensor]:
        """The style's Gram matrix at every style layer, from the LRU cache when possible."""
        cache_key = (key, longest, params.style_scale, params.style_layers)
        cached = self._style_cache.get(cache_key)
        if cached is not None:
            self._style_cache.move_to_end(cache_key)
            return cached
        style = _style_at(image, max(1, round(longest * params.style_scale)), need)
        outputs = model(tf.constant(style[None]), training=False)
        grams = [losses.gram(features)[0] for features in outputs[:-1]]
        self.style_targets_computed += 1
        self._style_cache[cache_key] = grams
        while len(self._style_cache) > self._style_cache_size:
            self._style_cache.popitem(last=False)
        return grams

    # -- optimisers --------------------------------------------------------------------------

    def _adam(
        self, params: NSTParams, targets: _Targets, contents: np.ndarray, x0: tf.Tensor
    ) -> _Optimization:
        key = ("adam", params.content_layer, params.style_layers)
        lr = tf.constant(params.learning_rate, tf.float32)
        state = {"x": x0, "m": tf.zeros_like(x0), "v": tf.zeros_like(x0), "t": 0}

        def step() -> np.ndarray:
            state["t"] += 1
            t = tf.constant(state["t"], tf.float32)
            state["x"], state["m"], state["v"], parts = self._call(
                key, self._adam_step, state["x"], state["m"], state["v"], t, *_args(targets), lr
            )
            return parts.numpy()

        return _Optimization(contents, step, lambda: state["x"])

    def _lbfgs(
        self, params: NSTParams, targets: _Targets, contents: np.ndarray, x0: tf.Tensor
    ) -> _Optimization:
        key = ("lbfgs", params.content_layer, params.style_layers)

        def evaluate(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return self._call(key, self._value_and_grad, x, *_args(targets))

        optimizer = LBFGS(evaluate, x0, params.learning_rate)

        def step() -> np.ndarray:
            parts = optimizer.parts.numpy()
            optimizer.step()
            return parts

        return _Optimization(contents, step, lambda: optimizer.image)

    def _value_and_grad(self, model: Any) -> Callable[..., Any]:
        scale = self._loss_scale

        def value_and_grad(
            x: tf.Tensor,
            content: tf.Tensor,
            styles: tuple[tf.Tensor, ...],
            layer_weights: tf.Tensor,
            loss_weights: tf.Tensor,
        ) -> tuple[tf.Tensor, tf.Tensor]:
            with tf.GradientTape() as tape:
                tape.watch(x)
                outputs = model(x, training=False)
                parts = losses.objective(outputs, x, content, styles, layer_weights, loss_weights)
                scaled = tf.reduce_sum(parts[0]) * scale
            return parts, tape.gradient(scaled, x) / scale

        return value_and_grad

    def _adam_step(self, model: Any) -> Callable[..., Any]:
        value_and_grad = self._value_and_grad(model)

        def adam_step(
            x: tf.Tensor,
            m: tf.Tensor,
            v: tf.Tensor,
            t: tf.Tensor,
            content: tf.Tensor,
            styles: tuple[tf.Tensor, ...],
            layer_weights: tf.Tensor,
            loss_weights: tf.Tensor,
            lr: tf.Tensor,
        ) -> tuple[tf.Tensor, ...]:
            parts, grad = value_and_grad(x, content, styles, layer_weights, loss_weights)
            x, m, v = adam_update(x, grad, m, v, t, lr)
            return x, m, v, parts

        return adam_step

    def _call(
        self, key: tuple[Any, ...], make: Callable[[Any], Callable[..., Any]], *args: Any
    ) -> Any:
        """Run the compiled function `key` for the shape of the image (`args[0]`), building it
        on first use; fall back from XLA once."""
        content_layer, style_layers = key[1], key[2]

        def build() -> Any:
            model = build_extractor(self.weights, content_layer, style_layers, self.mixed_precision)
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

    # -- results -----------------------------------------------------------------------------

    @staticmethod
    def _timed(group: _Group, function: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            group.seconds += time.perf_counter() - started

    def _previews(
        self, groups: list[_Group], runs: list[_Optimization], count: int, params: NSTParams
    ) -> list[np.ndarray]:
        previews: list[np.ndarray] = [np.empty(0)] * count
        for group, opt in zip(groups, runs, strict=True):
            images = opt.image().numpy()
            for k, index in enumerate(group.indices):
                image = images[k]
                if params.preserve_colors:
                    image = keep_content_colors(image, opt.contents[k])
                previews[index] = _to_uint8(image)
        return previews

    def _results(
        self, groups: list[_Group], rows: list[list[LossRow]], params: NSTParams, count: int
    ) -> list[EngineResult]:
        results: list[EngineResult | None] = [None] * count
        for group in groups:
            for k, index in enumerate(group.indices):
                image = group.image[k]
                if params.preserve_colors:
                    image = keep_content_colors(image, group.contents[k])
                results[index] = EngineResult(
                    image=_to_uint8(image),
                    losses=rows[index],
                    seconds=group.seconds,
                    iterations_per_second=group.steps / group.seconds if group.seconds else 0.0,
                    device=self.device,
                    weights=self.weights,
                )
        return [result for result in results if result is not None]


def _args(targets: _Targets) -> tuple[Any, ...]:
    return (targets.content, targets.styles, targets.layer_weights, targets.loss_weights)
