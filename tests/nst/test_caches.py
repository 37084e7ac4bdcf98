"""What a long-lived NST worker keeps between jobs is bounded, and shared where it can be."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from atelier.models import Job
from atelier.schemas import NSTParams
from atelier.settings import Settings
from atelier.storage import Storage
from tests.conftest import TEST_DATA
from tests.support.procs import REPO
from workers.nst.vgg import EXTRACTOR_CACHE_SIZE
from workers.tasks.nst import _load
from workers.tasks.runner import JobContext

BUILD_MANY = """
import gc, json, weakref
from workers.nst import vgg
layers = [f"block{b}_conv{c}" for b, n in ((1, 2), (2, 2), (3, 4)) for c in range(1, n + 1)]
built = []
for layer in layers:  # 8 layer choices a client might send, one after the other
    built.append(weakref.ref(vgg.build_extractor("none", layer, ("block1_conv1",))))
gc.collect()
alive = [ref() is not None for ref in built]
again = vgg.build_extractor("none", layers[-1], ("block1_conv1",)) is built[-1]()
print(json.dumps({"alive": alive, "again": again}))
"""


@pytest.mark.slow
def test_vgg_extractors_for_many_layer_choices_stay_within_the_cache_size():
    """Counts the models still alive (weak references), not resident memory, which differs
    by allocator and machine: each extractor holds a VGG19 (80 MB), and only the cache's most
    recent `EXTRACTOR_CACHE_SIZE` may be kept; an evicted one must be freed, not held elsewhere."""
    done = subprocess.run(
        [sys.executable, "-c", BUILD_MANY],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=True,
        env={"PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"},
    )
    got = json.loads(done.stdout.strip().splitlines()[-1])
    held = EXTRACTOR_CACHE_SIZE
    assert got["alive"] == [False] * (8 - held) + [True] * held, got
    assert got["again"], "a cached layer choice was built again"


def test_a_style_shared_by_jobs_is_decoded_once(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, max_pixels=64_000_000)
    storage = Storage(tmp_path / "storage")
    content = storage.put_file(TEST_DATA / "content" / "tubingen.jpg").sha256
    style = storage.put_file(TEST_DATA / "style" / "starry_night.jpg").sha256
    params = NSTParams(size=32, iterations=1)

    def load() -> list:
        job = Job(id=1, inputs={"content": content, "styles": [style]}, params={})
        context = JobContext(task=None, lease=None, job=job, settings=settings, storage=storage)
        return _load(context, params, settings).styles

    first, second = load(), load()
    assert first[0][1] is second[0][1]  # the same decoded array, not a second decode
    assert max(first[0][1].shape[:2]) < 100  # decoded near the 32 px the job uses
