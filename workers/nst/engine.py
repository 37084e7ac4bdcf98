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
from workers.nst.tiles import Tile, feather_windows, layout, pixels_for_budget
from workers.nst.vgg import build_extractor, min_side, precision_name

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
    final: LossRow  # losses of the returned image (before colour preservation and rounding)
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


def schedule(
    params: NSTParams,
    shapes: list[tuple[int, int]],
    need: int,
    max_pixels: int | None = None,
) -> list[Scale]:
    """Coarse-to-fine scales sharing `params.iterations` steps (see the module docstring)."""
    divisors = [
        2**level
        for level in range(params.scales - 1, 0, -1)
        if all(min(_scaled(shape, 2**level)) >= need for shape in shapes)
    ] + [1]
    if max_pixels is not None and not any(_fits(shapes, d, max_pixels) for d in divisors):
        divisor = divisors[0] * 2
        while all(min(_scaled(shape, divisor)) >= need for shape in shapes):
            if _fits(shapes, divisor, max_pixels):
                divisors.insert(0, divisor)
                break
            divisor *= 2
    divisors = divisors[-params.iterations :]
    coarse = max(1, params.iterations // (len(divisors) + 1)) if len(divisors) > 1 else 0
    finest = params.iterations - coarse * (len(divisors) - 1)
    return [Scale(d, coarse) for d in divisors[:-1]] + [Scale(1, finest)]


def _fits(shapes: list[tuple[int, int]], divisor: int, max_pixels: int) -> bool:
    return all(math.prod(_scaled(shape, divisor)) <= max_pixels for shape in shapes)


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
    final: np.ndarray | None = None  # (4, B) losses of the returned images
    seconds: float = 0.0
    steps: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.contents.shape[1], self.contents.shape[2]


@dataclass
class _Targets:
    content: tf.Tensor | list[tf.Tensor]  # (B, h, w, C) content-layer features; per tile if tiled
    styles: tuple[tf.Tensor, ...]  # per style layer (B, C, C) blended Gram targets
    layer_weights: tf.Tensor
    loss_weights: tf.Tensor


Evaluate = Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


class _Optimization:
    """One group at one scale: its optimiser, and the running average of its iterates."""

    def __init__(
        self,
        contents: np.ndarray,
        step: Callable[[], np.ndarray],
        current: Callable[[], tf.Tensor],
        evaluate: Evaluate,
        average: float,
    ) -> None:
        self.contents = contents  # (B, h, w, 3) at this scale, for previews in preserved colours
        self._step = step  # runs one iteration, returns the (4, B) losses before it
        self._current = current
        self._evaluate = evaluate
        self._decay = average
        self._average: tf.Tensor | None = None
        self._steps = 0

    def step(self) -> np.ndarray:
        parts = self._step()
        if self._decay:
            self._steps += 1
            x = self._current()
            previous = tf.zeros_like(x) if self._average is None else self._average
            self._average = self._decay * previous + (1.0 - self._decay) * x
        return parts

    def image(self) -> tf.Tensor:
        """The last iterate, or the bias-corrected average of the iterates."""
        if self._average is None:
            return self._current()
        return self._average / (1.0 - self._decay**self._steps)

    def losses(self) -> np.ndarray:
        """(4, B) losses of `image()`."""
        return self._evaluate(self.image())[0].numpy()


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
        self.style_targets_computed = 0
        self._style_cache: OrderedDict[tuple[Any, ...], list[tf.Tensor]] = OrderedDict()
        self._style_cache_size = style_cache_size
        self._functions: LRU[Any] = LRU(step_cache_size)
        # (optimizer, layers, height, width, batch) announced as compiled (a few small tuples).
        self._compiled: set[tuple[Any, ...]] = set()
        self._loss_scale = MIXED_PRECISION_LOSS_SCALE if self.precision == "float16" else 1.0

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
        need = min_side((*params.style_layers, params.content_layer))
        budget = self.max_pixels(params)
        groups = self._groups(jobs, params, budget)
        scales = schedule(params, [group.shape for group in groups], need, budget)
        total = sum(scale.iterations for scale in scales)
        rows: list[list[LossRow]] = [[] for _ in jobs]
        iteration = 0
        runs: list[_Optimization] = []
        for scale in scales:
            for group in groups:
                height, width = _scaled(group.shape, scale.divisor)
                built = (params.optimizer, params.content_layer, params.style_layers)
                if (*built, height, width, len(group.jobs)) not in self._compiled:
                    self._compiled.add((*built, height, width, len(group.jobs)))
                    stage(f"compiling for {width}×{height}")  # noqa: RUF001
            runs = [
                self._timed(g, self._start, g, scale, params, model, need, budget) for g in groups
            ]
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
        for group, opt in zip(groups, runs, strict=True):
            group.final = self._timed(group, opt.losses)
        return self._results(groups, rows, params, len(jobs), total)

    # -- preparation -------------------------------------------------------------------------

    def _model(self, params: NSTParams) -> Any:
        return build_extractor(
            self.weights, params.content_layer, params.style_layers, self.precision
        )

    def _groups(self, jobs: list[EngineJob], params: NSTParams, budget: int | None) -> list[_Group]:
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
                groups.append(_Group(indices[part], members[part], np.stack(contents[part])))
        return groups

    def _start(
        self,
        group: _Group,
        scale: Scale,
        params: NSTParams,
        model: Any,
        need: int,
        budget: int | None,
    ) -> _Optimization:
        height, width = _scaled(group.shape, scale.divisor)
        contents = group.contents
        if scale.divisor > 1:
            contents = np.stack([resize_to(c, height, width) for c in group.contents])
        x0 = self._initial(group, contents, params)
        tiles = None
        if budget is not None and len(group.jobs) * height * width > budget:
            tiles = layout(height, width, budget, need)
        if tiles is None:
            content_features: tf.Tensor | list[tf.Tensor] = self._content_features(model, contents)
        else:
            content_features = [
                self._content_features(model, contents[:, t.rows, t.cols]) for t in tiles
            ]
        longest = max(height, width)
        per_job = [
            losses.blend(
                [
                    self._style_grams(key, image, longest, params, model, need, budget)
                    for key, image in job.styles
                ],
                params.style_blend or [1.0] * len(job.styles),
            )
            for job in group.jobs
        ]
        targets = _Targets(
            content=content_features,
            styles=tuple(tf.stack(layer) for layer in zip(*per_job, strict=True)),
            layer_weights=tf.constant(
                params.style_layer_weights or [1.0] * len(params.style_layers), tf.float32
            ),
            loss_weights=tf.constant(
                [params.content_weight, params.style_weight, params.tv_weight], tf.float32
            ),
        )
        key = ("grad", params.content_layer, params.style_layers)
        if tiles is None:
            evaluate: Evaluate = lambda x: self._call(  # noqa: E731
                key, self._value_and_grad, x, *_args(targets)
            )
        else:
            evaluate = self._tiled(key, targets, tiles, height, width)
        if params.optimizer == "lbfgs":
            optimizer = LBFGS(evaluate, x0, params.learning_rate)

            def lbfgs_step() -> np.ndarray:
                parts = optimizer.parts.numpy()
                optimizer.step()
                return parts

            return _Optimization(
                contents, lbfgs_step, lambda: optimizer.image, evaluate, params.average
            )
        step, current = self._adam(params, targets, x0, evaluate if tiles else None)
        return _Optimization(contents, step, current, evaluate, params.average)

    @staticmethod
    def _content_features(model: Any, contents: np.ndarray) -> tf.Tensor:
        return tf.cast(model(tf.constant(contents), training=False)[-1], tf.float32)

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
        budget: int | None,
    ) -> list[tf.Tensor]:
        """The style's Gram matrix at every style layer, from the LRU cache when possible."""
        cache_key = (key, longest, params.style_scale, params.style_layers, budget)
        cached = self._style_cache.get(cache_key)
        if cached is not None:
            self._style_cache.move_to_end(cache_key)
            return cached
        style = _style_at(image, max(1, round(longest * params.style_scale)), need)
        if budget is None or style.shape[0] * style.shape[1] <= budget:
            parts = [(style, 1.0)]
        else:  # too large for one pass: the pixel-weighted mean of its tiles' Gram matrices
            parts = [
                (style[t.rows, t.cols], t.height * t.width)
                for t in _partition(style.shape[0], style.shape[1], budget, need)
            ]
        share = sum(weight for _, weight in parts)
        grams: list[tf.Tensor] = []
        for piece, weight in parts:
            outputs = model(tf.constant(piece[None]), training=False)
            layer_grams = [losses.gram(f)[0] * (weight / share) for f in outputs[:-1]]
            if grams:
                layer_grams = [a + b for a, b in zip(grams, layer_grams, strict=True)]
            grams = layer_grams
        self.style_targets_computed += 1
        self._style_cache[cache_key] = grams
        while len(self._style_cache) > self._style_cache_size:
            self._style_cache.popitem(last=False)
        return grams

    # -- optimisers --------------------------------------------------------------------------

    def _adam(
        self,
        params: NSTParams,
        targets: _Targets,
        x0: tf.Tensor,
        evaluate: Evaluate | None,
    ) -> tuple[Callable[[], np.ndarray], Callable[[], tf.Tensor]]:
        """Adam's step and current image: one fused compiled step, or (tiled) the tiled
        gradient followed by the update."""
        key = ("adam", params.content_layer, params.style_layers)
        lr = tf.constant(params.learning_rate, tf.float32)
        state = {"x": x0, "m": tf.zeros_like(x0), "v": tf.zeros_like(x0), "t": 0}

        def step() -> np.ndarray:
            state["t"] += 1
            t = tf.constant(state["t"], tf.float32)
            if evaluate is not None:
                parts, grad = evaluate(state["x"])
                state["x"], state["m"], state["v"] = adam_update(
                    state["x"], grad, state["m"], state["v"], t, lr
                )
                return parts.numpy()
            state["x"], state["m"], state["v"], parts = self._call(
                key, self._adam_step, state["x"], state["m"], state["v"], t, *_args(targets), lr
            )
            return parts.numpy()

        return step, lambda: state["x"]

    def _tiled(
        self,
        key: tuple[Any, ...],
        targets: _Targets,
        tiles: list[Tile],
        height: int,
        width: int,
    ) -> Evaluate:
        """Loss and gradient of whole images computed tile by tile: gradients blended with the
        feather windows, losses averaged with each window's share of the image."""
        windows = [tf.constant(w) for w in feather_windows(tiles, height, width)]
        shares = [float(tf.reduce_sum(w)) / (height * width) for w in windows]
        assert isinstance(targets.content, list)
        contents = targets.content

        def evaluate(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            grad = tf.zeros_like(x)
            total = tf.zeros((4, x.shape[0]), tf.float32)
            for tile, window, share, content in zip(tiles, windows, shares, contents, strict=True):
                parts, tile_grad = self._call(
                    key,
                    self._value_and_grad,
                    x[:, tile.rows, tile.cols],
                    content,
                    targets.styles,
                    targets.layer_weights,
                    targets.loss_weights,
                )
                pad = [
                    [0, 0],
                    [tile.top, height - tile.top - tile.height],
                    [tile.left, width - tile.left - tile.width],
                    [0, 0],
                ]
                grad += tf.pad(tile_grad * window, pad)
                total += share * parts
            return total, grad

        return evaluate

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
        self,
        groups: list[_Group],
        rows: list[list[LossRow]],
        params: NSTParams,
        count: int,
        total: int,
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
                    final=LossRow(total, *(float(p) for p in group.final[:, k])),
                    seconds=group.seconds,
                    iterations_per_second=group.steps / group.seconds if group.seconds else 0.0,
                    device=self.device,
                    weights=self.weights,
                )
        return [result for result in results if result is not None]


def _args(targets: _Targets) -> tuple[Any, ...]:
    return (targets.content, targets.styles, targets.layer_weights, targets.loss_weights)


def _partition(height: int, width: int, max_pixels: int, need: int) -> list[Tile]:
    """Non-overlapping tiles of about `max_pixels` (sides at least `need`) covering HxW."""
    side = max(need, math.isqrt(max_pixels))
    rows = max(1, min(height // need, math.ceil(height / side)))
    cols = max(1, min(width // need, math.ceil(width / side)))
    tops = [round(i * height / rows) for i in range(rows + 1)]
    lefts = [round(j * width / cols) for j in range(cols + 1)]
    return [
        Tile(tops[i], lefts[j], tops[i + 1] - tops[i], lefts[j + 1] - lefts[j])
        for i in range(rows)
        for j in range(cols)
    ]
