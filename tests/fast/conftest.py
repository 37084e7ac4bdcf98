"""Fixtures of the fast-engine tests: tiny real photos and paintings, one engine per session.

The networks always run at their own sizes (256 for styles, 384 for content tiles), so small
inputs cost little: contents are 64 px, styles 128 px, and results are compared with the
paintings at 96 px in the fixed feature space of `tests.support.style_stats`.
"""

from __future__ import annotations

import numpy as np
import pytest

from atelier.media import load_rgb, resize_longest
from tests.conftest import TEST_DATA

CONTENTS = {"tubingen": "content/tubingen.jpg", "golden_gate": "content/golden_gate.jpg"}
STYLES = {
    "starry": "style/starry_night.jpg",
    "scream": "style/the_scream.jpg",
    "wave": "style/wave_crop.jpg",
}


def image(relative: str, longest: int) -> np.ndarray:
    return resize_longest(load_rgb(TEST_DATA / relative, 64_000_000), longest)


@pytest.fixture(scope="session")
def contents() -> dict[str, np.ndarray]:
    return {name: image(path, 64) for name, path in CONTENTS.items()}


@pytest.fixture(scope="session")
def styles() -> dict[str, np.ndarray]:
    return {name: image(path, 128) for name, path in STYLES.items()}


@pytest.fixture(scope="session")
def references(styles: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The paintings at 96 px: what results are compared with."""
    return {name: resize_longest(style, 96) for name, style in styles.items()}


@pytest.fixture(scope="session")
def fast_engine():
    from workers.fast.engine import FastStyleEngine

    return FastStyleEngine()
