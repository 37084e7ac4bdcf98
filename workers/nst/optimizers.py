"""Optimisers on the image itself, per image of a batch.

Adam is a pure tensor function so the engine can fuse it into the XLA-compiled step. L-BFGS
(TensorFlow Probability is not a dependency, scipy is not installed) is a compact two-loop
recursion with a projected backtracking (Armijo) line search. Both treat each image of the batch
as its own problem: Adam is element-wise anyway, and L-BFGS keeps per-image curvature pairs,
step lengths and line-search outcomes, so batching N jobs never changes any job's result.

Both keep the image inside [0, 255] after every step (a projection; L-BFGS also evaluates its
trial points projected, so the Armijo test judges the point it will actually take).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import tensorflow as tf

ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPSILON = 1e-8

LBFGS_HISTORY = 10
LBFGS_ARMIJO = 1e-4
LBFGS_MAX_BACKTRACKS = 10
_CURVATURE_FLOOR = 1e-12

Evaluate = Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]
"""images (B, H, W, 3) -> (loss parts (4, B) with the total first, gradient (B, H, W, 3))."""


def adam_update(
    x: tf.Tensor, grad: tf.Tensor, m: tf.Tensor, v: tf.Tensor, t: tf.Tensor, lr: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """One Adam step (t counts from 1), then clip to the valid pixel range."""
    m = ADAM_BETA1 * m + (1.0 - ADAM_BETA1) * grad
    v = ADAM_BETA2 * v + (1.0 - ADAM_BETA2) * tf.square(grad)
    m_hat = m / (1.0 - tf.pow(ADAM_BETA1, t))
    v_hat = v / (1.0 - tf.pow(ADAM_BETA2, t))
    x = x - lr * m_hat / (tf.sqrt(v_hat) + ADAM_EPSILON)
    return tf.clip_by_value(x, 0.0, 255.0), m, v


@dataclass
class _Pair:
    s: tf.Tensor  # (B, N) step
    y: tf.Tensor  # (B, N) gradient change
    rho: tf.Tensor  # (B,) 1 / sᵀy, 0 where the pair is unusable
    gamma: tf.Tensor  # (B,) sᵀy / yᵀy, the initial Hessian scale this pair suggests


class LBFGS:
    """Per-image L-BFGS over a batch of images.

    `learning_rate` sets the first step (and any restart): a steepest-descent step that moves
    the most sensitive pixel by `learning_rate` grey levels. After that the curvature pairs
    scale the steps and the line search tries the full quasi-Newton step first.
    """

    def __init__(self, evaluate: Evaluate, x0: tf.Tensor, learning_rate: float) -> None:
        self._evaluate = evaluate
        self._shape = tf.shape(x0)
        self._batch = int(x0.shape[0])
        self._lr = float(learning_rate)
        self._history: list[_Pair] = []
        self.x = tf.reshape(x0, (self._batch, -1))
        parts, grad = evaluate(x0)
        self.parts = parts
        self._g = tf.reshape(grad, (self._batch, -1))

    @property
    def image(self) -> tf.Tensor:
        return tf.reshape(self.x, self._shape)

    def step(self) -> None:
        """One iteration: direction, line search, history update. `parts` then describes the
        new point."""
        x, g, f = self.x, self._g, self.parts[0]
        direction = -self._two_loop(g)
        descent = tf.reduce_sum(g * direction, axis=1) < 0.0
        direction = tf.where(descent[:, None], direction, -self._steepest_scale(g)[:, None] * g)

        step = tf.ones((self._batch,))
        accepted = tf.zeros((self._batch,), dtype=tf.bool)
        new_x, new_g, new_parts = x, g, self.parts
        for _ in range(LBFGS_MAX_BACKTRACKS):
            trial = tf.clip_by_value(x + step[:, None] * direction, 0.0, 255.0)
            trial = tf.where(accepted[:, None], new_x, trial)
            parts, grad = self._evaluate(tf.reshape(trial, self._shape))
            grad = tf.reshape(grad, (self._batch, -1))
            armijo = f + LBFGS_ARMIJO * tf.reduce_sum(g * (trial - x), axis=1)
            ok = parts[0] <= armijo
            take = ok & ~accepted
            new_x = tf.where(take[:, None], trial, new_x)
            new_g = tf.where(take[:, None], grad, new_g)
            new_parts = tf.where(take[None, :], parts, new_parts)
            accepted = accepted | ok
            if bool(tf.reduce_all(accepted)):
                break
            step = tf.where(accepted, step, 0.5 * step)

        s, y = new_x - x, new_g - g
        sy = tf.reduce_sum(s * y, axis=1)
        yy = tf.reduce_sum(y * y, axis=1)
        usable = (sy > _CURVATURE_FLOOR) & accepted
        pair = _Pair(
            s=s,
            y=y,
            rho=tf.where(usable, 1.0 / tf.maximum(sy, _CURVATURE_FLOOR), 0.0),
            gamma=tf.where(usable, sy / tf.maximum(yy, _CURVATURE_FLOOR), 0.0),
        )
        if not bool(tf.reduce_all(accepted)):
            # A failed line search means the curvature model is wrong for that image: forget
            # its pairs and restart it from a scaled steepest-descent step.
            keep = tf.cast(accepted, tf.float32)
            for old in self._history:
                old.rho, old.gamma = old.rho * keep, old.gamma * keep
        self._history = [*self._history, pair][-LBFGS_HISTORY:]
        self.x, self._g, self.parts = new_x, new_g, new_parts

    def _steepest_scale(self, g: tf.Tensor) -> tf.Tensor:
        return self._lr / tf.maximum(tf.reduce_max(tf.abs(g), axis=1), 1e-30)

    def _two_loop(self, g: tf.Tensor) -> tf.Tensor:
        """H·g with the L-BFGS inverse-Hessian estimate (pairs with rho 0 drop out)."""
        q = g
        alphas = []
        for pair in reversed(self._history):
            alpha = pair.rho * tf.reduce_sum(pair.s * q, axis=1)
            q = q - alpha[:, None] * pair.y
            alphas.append(alpha)
        gamma = self._steepest_scale(g)
        for pair in self._history:
            gamma = tf.where(pair.gamma > 0.0, pair.gamma, gamma)
        r = gamma[:, None] * q
        for pair, alpha in zip(self._history, reversed(alphas), strict=True):
            beta = pair.rho * tf.reduce_sum(pair.y * r, axis=1)
            r = r + (alpha - beta)[:, None] * pair.s
        return r
