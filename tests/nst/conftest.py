"""Fixtures of the NST engine tests: tiny images from the test data, one engine per session.

Every new input shape costs a trace (and with XLA a compile) of several seconds on a small CPU,
so the tests share one engine and use few shapes: contents are 48 px on the longest side (the
two content photos both become 36x48).
"""

from __future__ import annotations

import numpy as np
import pytest

from atelier.media import load_rgb, resize_longest
from tests.conftest import TEST_DATA

SIZE = 48


def _image(relative: str) -> np.ndarray:
    return resize_longest(load_rgb(TEST_DATA / relative, 64_000_000), 96)


@pytest.fixture(scope="session")
def tubingen() -> np.ndarray:
    return _image("content/tubingen.jpg")


@pytest.fixture(scope="session")
def golden_gate() -> np.ndarray:
    return _image("content/golden_gate.jpg")


@pytest.fixture(scope="session")
def hopper() -> np.ndarray:
    return _image("faces/grace_hopper.jpg")


@pytest.fixture(scope="session")
def starry() -> np.ndarray:
    return _image("style/starry_night.jpg")


@pytest.fixture(scope="session")
def scream() -> np.ndarray:
    return _image("style/the_scream.jpg")


@pytest.fixture(scope="session")
def engine():
    """The engine most tests share, without XLA: tracing a new shape is much cheaper than an
    XLA compile, and `test_xla_step_matches_plain_step` checks the XLA path separately."""
    from workers.nst.engine import StyleTransferEngine

    return StyleTransferEngine("none", jit_compile=False)
