"""Gatys et al. losses, one value per image of a batch.

Every function returns a vector of shape (B,): the images of a batch never interact, so the
gradient of the batch's summed loss with respect to one image is exactly the gradient of that
image's own loss. That is what lets the engine optimise N jobs as one tensor and still give each
job the result it would get alone, and report per-job losses.

Normalisation follows jcjohnson/neural-style (whose option names `NSTParams` uses), so its
weights carry over and a loss does not change with the image size:

- Gram matrix: G = FᵀF / (H·W), the mean over positions of the outer product of the channel
  vectors. Computed in float32 even when the network runs in float16.
- style loss of a layer: mean((G - T)²) / C², i.e. the squared error between Gram matrices
  normalised by the number of elements C·H·W, as neural-style does. Layers are summed with
  `style_layer_weights` (1 each by default, not averaged: neural-style gives every layer the
  full style weight).
- several style images: the target is the blend-weighted mean of their Gram matrices (neural-
  style's `-style_blend_weights`).
- content loss: mean((F - P)²) over the content layer.
- total variation: ½·Σ(Δx² + Δy²) over the image in pixel units, as neural-style's TVLoss, but
  rescaled to a 512 x 512 image: ½·Σ(Δx² + Δy²) · 512² / (H·W). neural-style's sum grows with
  the pixel count while the content and style terms are means, so its `-tv_weight` smooths a
  2048 px image 16 times harder than a 512 px one; here a weight means the same at every size
  and equals neural-style's at 512 x 512 (neural-style's default `-image_size`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

TV_REFERENCE_PIXELS = 512 * 512
"""The pixel count at which the total-variation loss equals neural-style's plain sum."""


def gram(features: tf.Tensor) -> tf.Tensor:
    """(B, H, W, C) feature maps -> (B, C, C) Gram matrices normalised by H·W."""
    maps = tf.cast(features, tf.float32)
    shape = tf.shape(maps)
    positions = tf.cast(shape[1] * shape[2], tf.float32)
    return tf.einsum("bhwc,bhwd->bcd", maps, maps) / positions


def content_loss(features: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Mean squared feature difference per image."""
    diff = tf.cast(features, tf.float32) - target
    return tf.reduce_mean(tf.square(diff), axis=[1, 2, 3])


def style_loss(
    grams: Sequence[tf.Tensor], targets: Sequence[tf.Tensor], layer_weights: tf.Tensor
) -> tf.Tensor:
    """Weighted sum over layers of mean((G - T)²) / C², per image."""
    total = tf.zeros_like(grams[0][:, 0, 0])
    for index, (g, t) in enumerate(zip(grams, targets, strict=True)):
        channels = float(g.shape[-1])
        layer = tf.reduce_mean(tf.square(g - t), axis=[1, 2]) / (channels * channels)
        total += layer_weights[index] * layer
    return total


def total_variation(images: tf.Tensor) -> tf.Tensor:
    """½·Σ(Δx² + Δy²) · 512² / (H·W) per image: penalises pixel-to-pixel noise with the same
    strength at every image size."""
    dy = images[:, 1:, :, :] - images[:, :-1, :, :]
    dx = images[:, :, 1:, :] - images[:, :, :-1, :]
    shape = tf.shape(images)
    scale = TV_REFERENCE_PIXELS / tf.cast(shape[1] * shape[2], images.dtype)
    return (
        0.5
        * scale
        * (
            tf.reduce_sum(tf.square(dy), axis=[1, 2, 3])
            + tf.reduce_sum(tf.square(dx), axis=[1, 2, 3])
        )
    )


def objective(
    outputs: Sequence[tf.Tensor],
    images: tf.Tensor,
    content_target: tf.Tensor,
    style_targets: Sequence[tf.Tensor],
    layer_weights: tf.Tensor,
    loss_weights: tf.Tensor,
) -> tf.Tensor:
    """(4, B): weighted total, content, style and TV losses of every image.

    `outputs` is the extractor's list (style maps..., content map); `loss_weights` holds the
    content, style and TV weights. The three parts are returned weighted, so they add up to
    the total the optimiser sees.
    """
    content = loss_weights[0] * content_loss(outputs[-1], content_target)
    style = loss_weights[1] * style_loss(
        [gram(f) for f in outputs[:-1]], style_targets, layer_weights
    )
    tv = loss_weights[2] * total_variation(images)
    return tf.stack([content + style + tv, content, style, tv])


def blend(per_style: Sequence[Sequence[tf.Tensor]], weights: Sequence[float]) -> list[tf.Tensor]:
    """Blend-weighted mean of several styles' Gram matrices, layer by layer ((C, C) each)."""
    share = np.asarray(weights, dtype=np.float64)
    share = share / share.sum()
    return [
        tf.add_n([float(w) * grams[layer] for w, grams in zip(share, per_style, strict=True)])
        for layer in range(len(per_style[0]))
    ]
