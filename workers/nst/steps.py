"""The optimisation steps of the style-transfer engine: loss and gradient, Adam's fused step,
L-BFGS, the tiled gradient, and the running average of iterates.

The functions here build what the engine compiles; the engine keeps the compiled functions
(one per input shape, see `StyleTransferEngine._call`) and passes its `call` in, so these stay
free of caching and of the XLA fallback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from atelier.schemas import NSTParams
from workers.nst import losses
from workers.nst.optimizers import LBFGS, adam_update
from workers.nst.tiles import Tile, feather_windows

Evaluate = Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]
# The engine's compiled-function call: (key, make, *args) -> make(model)(*args), compiled once
# per key and shape of args[0].
Call = Callable[..., Any]
Make = Callable[[Any], Callable[..., Any]]


@dataclass
class Targets:
    content: tf.Tensor | list[tf.Tensor]  # (B, h, w, C) content-layer features; per tile if tiled
    styles: tuple[tf.Tensor, ...]  # per style layer (B, C, C) blended Gram targets
    layer_weights: tf.Tensor
    loss_weights: tf.Tensor

    def args(self) -> tuple[Any, ...]:
        """The arguments the compiled steps take after the image (and Adam's state)."""
        return (self.content, self.styles, self.layer_weights, self.loss_weights)


class Optimization:
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


def value_and_grad(model: Any, scale: float) -> Callable[..., Any]:
    """The losses and the gradient of their sum, computed on the loss times `scale` (mixed
    float16 precision) and divided back."""

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


def adam_step(model: Any, scale: float) -> Callable[..., Any]:
    """Forward, backward and Adam's update in one function, so it compiles as one step."""
    grad_of = value_and_grad(model, scale)

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
        parts, grad = grad_of(x, content, styles, layer_weights, loss_weights)
        x, m, v = adam_update(x, grad, m, v, t, lr)
        return x, m, v, parts

    return adam_step


def adam(
    call: Call,
    make: Make,
    params: NSTParams,
    targets: Targets,
    x0: tf.Tensor,
    evaluate: Evaluate | None,
    steps: int,
) -> tuple[Callable[[], np.ndarray], Callable[[], tf.Tensor]]:
    """Adam's step and current image: one fused compiled step (`make`, see `adam_step`), or
    (tiled, `evaluate` given) the tiled gradient followed by the update. Over the scale's
    `steps` the learning rate falls geometrically to `learning_rate_decay` times its start
    (a tensor argument: a new rate does not retrace)."""
    key = ("adam", params.content_layer, params.style_layers)
    state = {"x": x0, "m": tf.zeros_like(x0), "v": tf.zeros_like(x0), "t": 0}

    def step() -> np.ndarray:
        state["t"] += 1
        t = tf.constant(state["t"], tf.float32)
        fraction = (state["t"] - 1) / max(1, steps - 1)
        lr = tf.constant(params.learning_rate * params.learning_rate_decay**fraction, tf.float32)
        if evaluate is not None:
            parts, grad = evaluate(state["x"])
            state["x"], state["m"], state["v"] = adam_update(
                state["x"], grad, state["m"], state["v"], t, lr
            )
            return parts.numpy()
        state["x"], state["m"], state["v"], parts = call(
            key, make, state["x"], state["m"], state["v"], t, *targets.args(), lr
        )
        return parts.numpy()

    return step, lambda: state["x"]


def lbfgs(
    evaluate: Evaluate, x0: tf.Tensor, contents: np.ndarray, params: NSTParams
) -> Optimization:
    """An L-BFGS optimisation of `x0` (see `optimizers.LBFGS`)."""
    optimizer = LBFGS(evaluate, x0, params.learning_rate)

    def step() -> np.ndarray:
        parts = optimizer.parts.numpy()
        optimizer.step()
        return parts

    return Optimization(contents, step, lambda: optimizer.image, evaluate, params.average)


def tiled(
    call: Call,
    key: tuple[Any, ...],
    make: Make,
    targets: Targets,
    tiles: list[Tile],
    size: tuple[int, int],
) -> Evaluate:
    """Loss and gradient of whole images computed tile by tile: gradients blended with the
    feather windows, losses averaged with each window's share of the image."""
    height, width = size
    windows = [tf.constant(w) for w in feather_windows(tiles, height, width)]
    shares = [float(tf.reduce_sum(w)) / (height * width) for w in windows]
    assert isinstance(targets.content, list)
    contents = targets.content

    def evaluate(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        grad = tf.zeros_like(x)
        total = tf.zeros((4, x.shape[0]), tf.float32)
        for tile, window, share, content in zip(tiles, windows, shares, contents, strict=True):
            parts, tile_grad = call(
                key,
                make,
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
