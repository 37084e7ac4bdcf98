"""The FLOP count behind the benchmark's GFLOP/s, on layers whose cost is known by hand."""

from __future__ import annotations

import math

from bench.flops import conv_flops, matmul_gflops, step_flops

# VGG19's first convolution on a 224x224 ImageNet input: 3x3x3 -> 64 channels, 86.7 M
# multiply-adds (the figure quoted for conv1_1 in VGG cost tables), so 173.4 MFLOP.
CONV1_1_224 = 2 * 224 * 224 * 3 * 3 * 3 * 64


def test_conv_flops_of_vgg19_first_layer_at_224():
    assert conv_flops(224, 224, 3, 64) == CONV1_1_224 == 173_408_256


def test_step_on_the_first_layer_is_the_conv_and_its_gram_forward_and_backward():
    gram = 2 * 224 * 224 * 64 * 64  # C x C outer products summed over the positions
    assert step_flops(224, 224, "block1_conv1", ("block1_conv1",)) == 2 * (CONV1_1_224 + gram)


def test_deeper_layers_run_on_pooled_maps():
    # block2_conv1 sees 112x112 maps of 64 channels: both block-1 convs, then 64 -> 128.
    convs = conv_flops(224, 224, 3, 64) + conv_flops(224, 224, 64, 64)
    convs += conv_flops(112, 112, 64, 128)
    gram = 2 * 112 * 112 * 128 * 128
    assert step_flops(224, 224, "block2_conv1", ("block2_conv1",)) == 2 * (convs + gram)


def test_the_content_layer_alone_sets_depth_and_adds_no_gram():
    shallow = step_flops(64, 64, "block1_conv1", ("block1_conv1",))
    deep = step_flops(64, 64, "block4_conv2", ("block1_conv1",))
    assert deep > shallow
    assert deep - shallow == 2 * sum(
        conv_flops(64 // 2 ** (b - 1), 64 // 2 ** (b - 1), cin, cout)
        for b, cin, cout in [(1, 64, 64), (2, 64, 128), (2, 128, 128), (3, 128, 256),
                             (3, 256, 256), (3, 256, 256), (3, 256, 256), (4, 256, 512),
                             (4, 512, 512)]
    )  # fmt: skip


def test_matmul_peak_is_a_positive_rate():
    assert math.isfinite(matmul_gflops(n=64, repeats=2)) and matmul_gflops(n=64, repeats=2) > 0
