"""The two Magenta networks as onnxruntime sessions, with their fixed input sizes.

`predict` turns a 256x256 style image into a 100-number style vector; `transform` paints a
384x384 content image with a style vector. Both take NHWC float32 in [0, 1] and work on one image
per call (the converted graphs have a fixed batch of 1).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from atelier.fast_models import PREDICT, TRANSFORM, model_digests, model_dir

STYLE_SIDE = 256
CONTENT_SIDE = 384
VECTOR_SIZE = 100


class MagentaNetworks:
    """The style-prediction and transform sessions of one process (loaded once: ~30 ms)."""

    def __init__(self, threads: int = 0) -> None:
        folder = model_dir()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's default, one per core
        options.log_severity_level = 3  # the converted int8 graphs warn about unused initializers
        providers = ["CPUExecutionProvider"]
        self._predict = ort.InferenceSession(str(folder / PREDICT), options, providers=providers)
        self._transform = ort.InferenceSession(
            str(folder / TRANSFORM), options, providers=providers
        )
        self._predict_input = self._predict.get_inputs()[0].name
        content, vector = self._transform.get_inputs()
        self._content_input, self._vector_input = content.name, vector.name
        self.digests = model_digests()

    def predict(self, style: np.ndarray) -> np.ndarray:
        """A (100,) style vector from a 256x256x3 float image in [0, 1]."""
        if style.shape != (STYLE_SIDE, STYLE_SIDE, 3):
            raise ValueError(f"style input must be {STYLE_SIDE}x{STYLE_SIDE}x3, got {style.shape}")
        batch = np.ascontiguousarray(style[None], dtype=np.float32)
        (vector,) = self._predict.run(None, {self._predict_input: batch})
        return vector.reshape(VECTOR_SIZE)

    def transform(self, content: np.ndarray, vector: np.ndarray) -> np.ndarray:
        """A 384x384x3 float image in [0, 1]: `content` (384x384x3 in [0, 1]) painted with
        `vector`."""
        if content.shape != (CONTENT_SIDE, CONTENT_SIDE, 3):
            raise ValueError(
                f"content input must be {CONTENT_SIDE}x{CONTENT_SIDE}x3, got {content.shape}"
            )
        feeds = {
            self._content_input: np.ascontiguousarray(content[None], dtype=np.float32),
            self._vector_input: np.asarray(vector, np.float32).reshape(1, 1, 1, VECTOR_SIZE),
        }
        (image,) = self._transform.run(None, feeds)
        return image[0]
