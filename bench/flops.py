"""How close a style-transfer step comes to the machine: its FLOPs, and the matmul peak.

A step's arithmetic is counted from the VGG19 layers it uses (`step_flops`), so the benchmark
can turn a measured step time into achieved GFLOP/s and set it against the best a large
`tf.matmul` reaches on the same machine in the same run (`matmul_gflops`): that share says how
much a faster kernel could still gain, independently of how loaded the machine is.
"""

from __future__ import annotations

import time

from atelier.vgg19 import BLOCK_CHANNELS, BLOCK_CONVS, block_of, channels_of, conv_of, deepest

KERNEL = 3  # every VGG19 convolution is 3x3


def conv_flops(height: int, width: int, channels_in: int, channels_out: int) -> float:
    """Multiply-adds x 2 of one 3x3 'same' convolution on an HxW input."""
    return 2.0 * height * width * KERNEL * KERNEL * channels_in * channels_out


def step_flops(height: int, width: int, content_layer: str, style_layers: tuple[str, ...]) -> float:
    """FLOPs of one optimiser step on one HxW image: forward and backward.

    Forward: every convolution up to the deepest layer used, and each style layer's Gram
    matrix (2·N·C² for N positions and C channels). Backward: the gradient reaches the image,
    so every convolution's input gradient (as many FLOPs as its forward; the weights are
    frozen, so no weight gradients) and each Gram's gradient (2·F·dG, again 2·N·C²).
    Element-wise work (ReLU, pooling, the losses, the optimiser update) is left out: it is
    a fraction of a percent of the convolutions.
    """
    last = deepest((content_layer, *style_layers))
    last_block, last_conv = block_of(last), conv_of(last)
    convs, channels_in, h, w = 0.0, 3, height, width
    for block, (channels, count) in enumerate(zip(BLOCK_CHANNELS, BLOCK_CONVS, strict=True), 1):
        for conv in range(1, count + 1):
            if (block, conv) > (last_block, last_conv):
                break
            convs += conv_flops(h, w, channels_in, channels)
            channels_in = channels
        h, w = h // 2, w // 2
    grams = 0.0
    for layer in style_layers:
        scale = 2 ** (block_of(layer) - 1)
        positions = (height // scale) * (width // scale)
        grams += 2.0 * positions * channels_of(layer) ** 2
    return 2.0 * convs + 2.0 * grams


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """The best GFLOP/s of an n x n float32 `tf.matmul` over `repeats` timed runs (the first,
    warm-up run is not timed): the machine's practical dense peak, measured now."""
    import tensorflow as tf

    a = tf.random.stateless_normal((n, n), seed=(1, 2))
    b = tf.random.stateless_normal((n, n), seed=(3, 4))
    _ = tf.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        _ = tf.matmul(a, b).numpy()
        best = min(best, time.perf_counter() - started)
    return 2.0 * n**3 / best / 1e9
