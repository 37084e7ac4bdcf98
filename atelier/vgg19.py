"""VGG19's shape, as arithmetic: what a pass costs and holds per input pixel, up to a layer.

The NST engine (`workers.nst`) plans its memory with these figures and the producers bound a
job's time with them (`atelier.limits`); neither needs TensorFlow to know how big the network
is. Layers are Keras' names (`block4_conv2`): five blocks of 3x3 convolutions, each block's
output pooled 2x before the next.
"""

from __future__ import annotations

# Channels of each VGG19 block; block b has BLOCK_CONVS[b-1] 3x3 convolutions.
BLOCK_CHANNELS = (64, 128, 256, 512, 512)
BLOCK_CONVS = (2, 2, 4, 4, 4)
BYTES_PER_FLOAT = 4
ACTIVATION_COPIES = 3
"""Each activation is held for the backward pass, gets a gradient of its own size, and XLA or the
convolution kernels need about one more as workspace: 3 copies is the estimate."""


def block_of(layer: str) -> int:
    """`block4_conv2` -> 4."""
    return int(layer.split("_")[0].removeprefix("block"))


def conv_of(layer: str) -> int:
    """`block4_conv2` -> 2."""
    return int(layer.rsplit("conv", 1)[1])


def channels_of(layer: str) -> int:
    return BLOCK_CHANNELS[block_of(layer) - 1]


def deepest(layers: tuple[str, ...]) -> str:
    """The layer of `layers` that the network must be run furthest to reach."""
    return max(layers, key=lambda name: (block_of(name), conv_of(name)))


def min_side(layers: tuple[str, ...]) -> int:
    """The smallest image side that still reaches the deepest of `layers` (one 2x pooling per
    block before it)."""
    return 2 ** (max(block_of(name) for name in layers) - 1)


def forward_flops(height: int, width: int, last_layer: str) -> float:
    """Multiply-adds x 2 of the convolutions up to `last_layer` for one HxW image.

    The benchmark turns this into a share of the accelerator's peak: a step is about
    2x this (forward, plus the input-gradient half of the backward; the weights are frozen).
    """
    flops = 0.0
    channels_in = 3
    last_block, last_conv = block_of(last_layer), conv_of(last_layer)
    for block, (channels, convs) in enumerate(zip(BLOCK_CHANNELS, BLOCK_CONVS, strict=True), 1):
        for conv in range(1, convs + 1):
            flops += 2.0 * height * width * 9 * channels_in * channels
            channels_in = channels
            if (block, conv) == (last_block, last_conv):
                return flops
        height, width = height // 2, width // 2
    return flops


def floats_per_pixel(layers: tuple[str, ...]) -> float:
    """Activations per input pixel of VGG19 up to the deepest of `layers` (convolutions and the
    pooling outputs between blocks), forward pass only."""
    last = max(block_of(name) for name in layers)
    deepest_conv = max(conv_of(n) for n in layers if block_of(n) == last)
    total, area = 0.0, 1.0
    for block, (channels, convs) in enumerate(zip(BLOCK_CHANNELS, BLOCK_CONVS, strict=True), 1):
        used = deepest_conv if block == last else convs
        total += used * channels * area
        if block == last:
            break
        area /= 4.0
        total += channels * area  # the pooling output
    return total


def pixels_for_budget(memory_mb: float, layers: tuple[str, ...]) -> int:
    """How many input pixels (batch included) one forward-and-backward pass may take within
    `memory_mb` of activations: an estimate (see ACTIVATION_COPIES), not a measurement."""
    per_pixel = floats_per_pixel(layers) * BYTES_PER_FLOAT * ACTIVATION_COPIES
    return max(1, int(memory_mb * 1024 * 1024 / per_pixel))
