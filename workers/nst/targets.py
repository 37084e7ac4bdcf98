"""What the engine optimises towards, and where it starts: content features, style Gram targets
(kept in a bounded cache across jobs and runs) and the initial image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from atelier.cache import LRU
from atelier.media import resize_to
from atelier.schemas import NSTParams
from workers.nst import losses
from workers.nst.plan import EngineJob, partition, style_at
from workers.nst.steps import Targets
from workers.nst.tiles import Tile


class StyleGrams:
    """A style's Gram targets depend only on (style, size, style_scale, layers, budget), so they
    are computed once and the `size` most recently used kept; `computed` counts computations."""

    def __init__(self, size: int) -> None:
        self._cache: LRU[list[tf.Tensor]] = LRU(size)
        self.computed = 0

    def get(
        self,
        key: str,
        image: np.ndarray,
        longest: int,
        params: NSTParams,
        model: Any,
        need: int,
        budget: int | None,
    ) -> list[tf.Tensor]:
        """The style's Gram matrix at every style layer, from the cache when possible."""

        def compute() -> list[tf.Tensor]:
            style = style_at(image, max(1, round(longest * params.style_scale)), need)
            grams = _grams(style, model, need, budget)
            self.computed += 1
            return grams

        cache_key = (key, longest, params.style_scale, params.style_layers, budget)
        return self._cache.get_or_make(cache_key, compute)


def _grams(style: np.ndarray, model: Any, need: int, budget: int | None) -> list[tf.Tensor]:
    """The Gram matrices of `style` at every style layer; of a style too large for one pass
    under `budget`, the pixel-weighted mean of its tiles' Gram matrices."""
    if budget is None or style.shape[0] * style.shape[1] <= budget:
        parts = [(style, 1.0)]
    else:
        parts = [
            (style[t.rows, t.cols], t.height * t.width)
            for t in partition(style.shape[0], style.shape[1], budget, need)
        ]
    share = sum(weight for _, weight in parts)
    grams: list[tf.Tensor] = []
    for piece, weight in parts:
        outputs = model(tf.constant(piece[None]), training=False)
        layer_grams = [losses.gram(f)[0] * (weight / share) for f in outputs[:-1]]
        if grams:
            layer_grams = [a + b for a, b in zip(grams, layer_grams, strict=True)]
        grams = layer_grams
    return grams


def content_features(model: Any, contents: np.ndarray) -> tf.Tensor:
    return tf.cast(model(tf.constant(contents), training=False)[-1], tf.float32)


def targets(
    styles: StyleGrams,
    jobs: Sequence[EngineJob],
    contents: np.ndarray,
    tiles: list[Tile] | None,
    params: NSTParams,
    model: Any,
    need: int,
    budget: int | None,
) -> Targets:
    """The jobs' content features (per tile when tiled) and blended style Grams."""
    if tiles is None:
        features: tf.Tensor | list[tf.Tensor] = content_features(model, contents)
    else:
        features = [content_features(model, contents[:, t.rows, t.cols]) for t in tiles]
    longest = max(contents.shape[1:3])
    per_job = [
        losses.blend(
            [
                styles.get(key, image, longest, params, model, need, budget)
                for key, image in job.styles
            ],
            params.style_blend or [1.0] * len(job.styles),
        )
        for job in jobs
    ]
    return Targets(
        content=features,
        styles=tuple(tf.stack(layer) for layer in zip(*per_job, strict=True)),
        layer_weights=tf.constant(
            params.style_layer_weights or [1.0] * len(params.style_layers), tf.float32
        ),
        loss_weights=tf.constant(
            [params.content_weight, params.style_weight, params.tv_weight], tf.float32
        ),
    )


def initial(
    previous: np.ndarray | None,
    contents: np.ndarray,
    jobs: Sequence[EngineJob],
    params: NSTParams,
) -> tf.Tensor:
    """Where a scale starts: the previous scale's result upsampled, else `params.init`."""
    height, width = contents.shape[1:3]
    if previous is not None:
        return tf.constant(np.stack([resize_to(img, height, width) for img in previous]))
    if params.init == "noise":
        rng = np.random.default_rng(params.seed)
        noise = rng.uniform(0.0, 255.0, size=(height, width, 3)).astype(np.float32)
        return tf.constant(np.repeat(noise[None], len(jobs), axis=0))
    if params.init == "fast":
        from workers.fast.starts import fast_starts

        return tf.constant(fast_starts(contents, [job.styles for job in jobs], params))
    if params.init == "style":
        first = [resize_to(job.styles[0][1].astype(np.float32), height, width) for job in jobs]
        return tf.constant(np.stack(first))
    return tf.constant(contents)
