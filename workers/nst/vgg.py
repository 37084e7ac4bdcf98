"""The VGG19 feature extractor: which weights, where they come from, and what it outputs.

Weights are named by a spec string (the `ATELIER_VGG_WEIGHTS` setting or a job's `weights`):

- `imagenet`: the Keras "notop" file, taken from the Keras cache (`$KERAS_HOME/models` or
  `~/.keras/models`). When it is missing it is downloaded with our own socket timeout, so an
  offline worker fails within seconds with `WeightsUnavailable` and instructions, instead of
  hanging inside Keras' downloader (which has no timeout).
- a path to an `.h5` file: loaded as is; a missing or wrong file is `WeightsUnavailable`.
- `none`: random weights for tests and dry runs. They are drawn from a fixed seed with He
  initialisation, so every process gets the same network and features keep a realistic scale
  through the 16 ReLU layers (Keras' default Glorot init makes deep features fade away).

The extractor takes RGB images in [0, 255] and does VGG's own preprocessing inside (RGB to BGR,
minus the ImageNet means), so callers never have to remember it. It is frozen, cut after the
deepest layer asked for, and cached per process (the few most recently used layer choices):
building it and loading 80 MB of weights is paid once per worker, not once per job.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from atelier.cache import LRU
from atelier.errors import WeightsUnavailable
from atelier.vgg19 import BLOCK_CHANNELS as BLOCK_CHANNELS  # the network's shape lives in the core
from atelier.vgg19 import BLOCK_CONVS as BLOCK_CONVS
from atelier.vgg19 import block_of as block_of
from atelier.vgg19 import forward_flops as forward_flops
from atelier.vgg19 import min_side as min_side
from atelier.weights import WEIGHTS_FILE, WEIGHTS_URL, how_to_provide, weights_path
from atelier.weights_fetch import download_url, verify

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 10.0
IMAGENET_BGR_MEANS = (103.939, 116.779, 123.68)
RANDOM_SEED = 1234

# Each extractor holds a whole VGG19 (about 80 MB of weights); clients choose the layers, so
# the cache is bounded: the least recently used choice is dropped.
EXTRACTOR_CACHE_SIZE = 4
_extractors: LRU[keras.Model] = LRU(EXTRACTOR_CACHE_SIZE)


def resolve_weights(weights: str) -> str | None:
    """The .h5 file to load for a weights spec, or None for random weights.

    Raises WeightsUnavailable with instructions when the file cannot be had. Runs before
    TensorFlow is imported, so a misconfigured worker fails in milliseconds.
    """
    path = weights_path(weights)
    if path is None:
        return None
    if weights.strip().lower() == "imagenet":
        if not path.is_file():
            _download(path)
        return str(path)
    if not path.is_file():
        raise WeightsUnavailable(f"VGG19 weights file {path} does not exist. {how_to_provide()}")
    if not os.access(path, os.R_OK):
        raise WeightsUnavailable(f"VGG19 weights file {path} is not readable. {how_to_provide()}")
    return str(path)


def _download(dest: Path) -> None:
    """Fetch the ImageNet weights into the Keras cache, atomically, verifying the checksum."""
    log.info("downloading VGG19 weights from %s", WEIGHTS_URL)
    partial = dest.with_name(f"{dest.name}.{os.getpid()}.part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        download_url(WEIGHTS_URL, partial, lambda _done, _total: None, DOWNLOAD_TIMEOUT_S)
        verdict = verify(partial)
        if not verdict.verified:
            raise WeightsUnavailable(
                f"the VGG19 weights downloaded from {WEIGHTS_URL} are corrupt "
                f"({verdict.detail}). {how_to_provide()}"
            )
        partial.replace(dest)
    except OSError as error:  # URLError, timeouts, refused connections, a read-only cache
        raise WeightsUnavailable(
            f"VGG19 ImageNet weights are not cached in {dest.parent} and could not be "
            f"downloaded ({error}). {how_to_provide()}"
        ) from error
    finally:
        partial.unlink(missing_ok=True)


PRECISION_POLICIES = {
    "float32": "float32",
    "float16": "mixed_float16",
    "bfloat16": "mixed_bfloat16",
}


def precision_name(mixed_precision: bool | str) -> str:
    """`float32`, `float16` or `bfloat16` for a mixed-precision flag (True means float16)."""
    if mixed_precision is True:
        return "float16"
    if not mixed_precision:
        return "float32"
    if mixed_precision not in PRECISION_POLICIES:
        raise ValueError(f"unknown precision {mixed_precision!r}")
    return str(mixed_precision)


def build_extractor(
    weights: str,
    content_layer: str,
    style_layers: tuple[str, ...],
    mixed_precision: bool | str = False,
) -> keras.Model:
    """A frozen model: RGB [0, 255] batch -> [*style feature maps, content feature map].

    `mixed_precision`: False, True (float16) or `bfloat16`: the network's compute type; its
    variables stay float32. Cached per process by (weights, layers, precision), the
    `EXTRACTOR_CACHE_SIZE` most recently used.
    """
    mixed_precision = precision_name(mixed_precision)
    key = (weights, content_layer, tuple(style_layers), mixed_precision)
    return _extractors.get_or_make(
        key, lambda: _build(weights, content_layer, tuple(style_layers), mixed_precision)
    )


def _build(
    weights: str, content_layer: str, style_layers: tuple[str, ...], mixed_precision: str
) -> keras.Model:
    path = resolve_weights(weights)
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(PRECISION_POLICIES[mixed_precision])
    try:
        base = keras.applications.VGG19(
            include_top=False, weights=path, input_shape=(None, None, 3)
        )
    except (OSError, ValueError, KeyError) as error:
        raise WeightsUnavailable(
            f"cannot load VGG19 weights from {path}: {error}. The file must be Keras' VGG19 "
            f"'notop' weights ({WEIGHTS_FILE}). {how_to_provide()}"
        ) from error
    finally:
        keras.config.set_dtype_policy(previous)
    if path is None:
        _seeded_he_init(base)
    base.trainable = False
    names = (*style_layers, content_layer)
    features = keras.Model(base.input, [base.get_layer(name).output for name in names])
    rgb = keras.Input((None, None, 3), dtype="float32", name="rgb_0_255")
    bgr = keras.ops.flip(rgb, axis=-1) - keras.ops.convert_to_tensor(IMAGENET_BGR_MEANS)
    model = keras.Model(rgb, features(bgr), name="vgg19_features")
    model.trainable = False
    return model


def _seeded_he_init(model: keras.Model) -> None:
    import numpy as np

    rng = np.random.default_rng(RANDOM_SEED)
    for layer in model.layers:
        if not layer.weights:
            continue
        kernel, bias = layer.get_weights()
        fan_in = float(np.prod(kernel.shape[:-1]))
        std = np.sqrt(2.0 / fan_in)
        kernel = rng.standard_normal(kernel.shape, dtype=np.float32) * np.float32(std)
        layer.set_weights([kernel, np.zeros_like(bias)])
