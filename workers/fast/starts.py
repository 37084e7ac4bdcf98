"""`init: fast` for the Gatys engine: start the optimisation from the fast engine's painting.

The feed-forward result is already a stylisation; the optimisation then only refines it towards
the VGG19 losses, which bench/time_to_quality.py's table measures against the other inits.
"""

from __future__ import annotations

import numpy as np

from atelier.schemas import NSTParams
from workers.fast.engine import FastJob, shared_engine


def fast_starts(
    contents: np.ndarray, styles: list[list[tuple[str, np.ndarray]]], params: NSTParams
) -> np.ndarray:
    """For contents (B, H, W, 3) in [0, 255] at the optimisation's scale and each job's styles,
    the fast engine's paintings at the same size (float32, 0-255), with the job's blend and
    strength (colours are preserved later, on the final image, if asked)."""
    engine = shared_engine()
    height, width = contents.shape[1:3]
    starts = []
    for content, job_styles in zip(contents, styles, strict=True):
        job = FastJob(content=content, styles=job_styles)
        vector = engine.mixed_vector(job, params.style_blend, params.strength)
        image, _ = engine.paint(content, vector, height, width)
        starts.append(image)
    return np.stack(starts).astype(np.float32)
