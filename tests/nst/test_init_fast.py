"""`init: fast`: the Gatys optimisation starts from the fast engine's painting."""

from __future__ import annotations

import numpy as np

from atelier.media import resize_to
from atelier.schemas import NSTParams
from tests.nst.conftest import SIZE
from workers.fast.starts import fast_starts
from workers.nst.engine import EngineJob


def test_fast_init_starts_from_the_fast_engines_painting(engine, tubingen, starry):
    """One Adam step with a tiny learning rate leaves the start image as it was: the result is
    the fast painting of the content at the optimisation's size, not the content."""
    job = EngineJob(content=tubingen, styles=[("starry", starry)])
    common = {"size": SIZE, "iterations": 1, "learning_rate": 1e-3, "weights": "none"}
    [fast] = engine.run([job], NSTParams(init="fast", **common))
    [plain] = engine.run([job], NSTParams(init="content", **common))
    height, width = fast.image.shape[:2]
    content = resize_to(tubingen, height, width)
    [expected] = fast_starts(content[None], [job.styles], NSTParams(**common))
    assert np.abs(fast.image.astype(np.float32) - expected).max() <= 1.5
    assert np.abs(fast.image.astype(np.float32) - plain.image).mean() > 20
