"""The losses against reference formulas written here from Gatys et al. and jcjohnson/neural-style.

neural-style (neural_style.lua) defines, for feature maps F of shape C x H x W (F̂ = F viewed
as C x HW):
- GramMatrix: G = F̂ F̂ᵀ; StyleLoss divides it by F's element count C·H·W and takes
  `nn.MSECriterion` against the target Gram matrix (the mean over the C x C entries), times the
  style weight, summed over the style layers;
- ContentLoss: `nn.MSECriterion` between the features and the content target (the mean over
  C·H·W), times the content weight;
- TVLoss: its backward is the gradient of ½·Σ(Δx² + Δy²) over the image, times the TV weight;
  Atelier rescales that sum to a 512 x 512 image (times 512² / (H·W)) so the weight is the same at
  every size;
- `-style_blend_weights`: normalised to sum 1; the target is the weighted sum of Gram matrices.
The references below are plain loops over numpy arrays, not the engine's vectorised code.
"""

from __future__ import annotations

import numpy as np
import pytest

from atelier.schemas import DEFAULT_STYLE_LAYERS, NSTParams

RNG = np.random.default_rng(42)


def reference_gram(features: np.ndarray) -> np.ndarray:
    """neural-style: F̂ F̂ᵀ / (C·H·W) for one HxWxC feature map."""
    height, width, channels = features.shape
    flat = features.reshape(height * width, channels).T.astype(np.float64)  # C x HW
    gram = np.zeros((channels, channels))
    for i in range(channels):
        for j in range(channels):
            gram[i, j] = np.dot(flat[i], flat[j])
    return gram / (channels * height * width)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


def reference_tv(image: np.ndarray) -> float:
    """½·Σ over pixels and channels of (right neighbour - pixel)² + (lower neighbour - pixel)²,
    rescaled to 512² pixels."""
    height, width, channels = image.shape
    total = 0.0
    for y in range(height):
        for x in range(width):
            for c in range(channels):
                if x + 1 < width:
                    total += (float(image[y, x + 1, c]) - float(image[y, x, c])) ** 2
                if y + 1 < height:
                    total += (float(image[y + 1, x, c]) - float(image[y, x, c])) ** 2
    return 0.5 * total * 512 * 512 / (height * width)


def test_each_loss_matches_the_reference_formulas():
    import tensorflow as tf

    from workers.nst import losses

    batch = 2
    # two style layers of different sizes and channel counts, one content layer
    generated = [RNG.normal(size=(batch, 6, 5, 4)), RNG.normal(size=(batch, 3, 3, 8))]
    style_a = [RNG.normal(size=(7, 6, 4)), RNG.normal(size=(4, 3, 8))]
    style_b = [RNG.normal(size=(5, 5, 4)), RNG.normal(size=(3, 2, 8))]
    content_features = RNG.normal(size=(batch, 3, 4, 6))
    content_target = RNG.normal(size=(batch, 3, 4, 6))
    images = RNG.uniform(0, 255, size=(batch, 7, 6, 3))
    layer_weights = [1.0, 0.5]
    blend_weights = [3.0, 1.0]
    content_w, style_w, tv_w = 5.0, 100.0, 1e-3

    f32 = lambda a: tf.constant(np.asarray(a, np.float32))  # noqa: E731
    grams_a = [losses.gram(f32(f[None]))[0] for f in style_a]
    grams_b = [losses.gram(f32(f[None]))[0] for f in style_b]
    targets = losses.blend([grams_a, grams_b], blend_weights)
    parts = losses.objective(
        [f32(g) for g in generated] + [f32(content_features)],
        f32(images),
        f32(content_target),
        [tf.stack([t] * batch) for t in targets],
        f32(layer_weights),
        f32([content_w, style_w, tv_w]),
    ).numpy()

    share = np.asarray(blend_weights) / sum(blend_weights)
    for k in range(batch):
        style = 0.0
        for layer, weight in enumerate(layer_weights):
            target = share[0] * reference_gram(style_a[layer]) + share[1] * reference_gram(
                style_b[layer]
            )
            style += weight * mse(reference_gram(generated[layer][k]), target)
        content = mse(content_features[k], content_target[k])
        tv = reference_tv(images[k])
        expected = [
            content_w * content + style_w * style + tv_w * tv,
            content_w * content,
            style_w * style,
            tv_w * tv,
        ]
        np.testing.assert_allclose(parts[:, k], expected, rtol=2e-5)


def test_total_variation_means_the_same_at_every_size():
    import tensorflow as tf

    from workers.nst.losses import total_variation

    small = RNG.normal(128, 20, size=(1, 64, 64, 3)).astype(np.float32)
    large = RNG.normal(128, 20, size=(1, 256, 256, 3)).astype(np.float32)
    ratio = float(total_variation(tf.constant(large))[0] / total_variation(tf.constant(small))[0])
    assert ratio == pytest.approx(1.0, abs=0.05)  # a plain sum would give 16


def test_defaults_are_neural_styles():
    params = NSTParams()
    assert (params.content_weight, params.style_weight, params.tv_weight) == (5.0, 100.0, 1e-3)
    assert params.content_layer == "block4_conv2"  # relu4_2: Keras' conv layers include the ReLU
    assert (
        params.style_layers == DEFAULT_STYLE_LAYERS == tuple(f"block{b}_conv1" for b in range(1, 6))
    )  # relu1_1 .. relu5_1
    assert params.style_layer_weights is None  # equal weights
    assert params.learning_rate == 10.0  # neural-style's -learning_rate, in grey levels


def test_extractor_outputs_are_after_the_relu():
    """Keras' VGG19 convolutions carry their ReLU, so blockN_convM is neural-style's reluN_M."""
    import tensorflow as tf

    from workers.nst.vgg import build_extractor

    model = build_extractor("none", "block4_conv2", DEFAULT_STYLE_LAYERS)
    image = tf.constant(RNG.uniform(0, 255, size=(1, 32, 32, 3)).astype(np.float32))
    outputs = model(image, training=False)
    assert all(float(tf.reduce_min(o)) >= 0.0 for o in outputs)
    assert any(float(tf.reduce_max(o)) > 0.0 for o in outputs)
    assert model.layers[-1].get_layer("block4_conv2").activation.__name__ == "relu"
