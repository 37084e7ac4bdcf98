"""Producers (API, CLI, scheduler) and the shared core never load TensorFlow, OpenCV or
onnxruntime: importing every one of their modules, and the task list the Celery app names, loads
none of them. The import contracts (test_layers.py) check the import statements; this checks what
a process really loads, where the heavy imports wait inside the functions that need them."""

from __future__ import annotations

import subprocess
import sys

from tests.support.procs import REPO

PROBE = """
import importlib, pkgutil, sys
names = []
for package in ("atelier", "api", "scheduler"):
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError:
        continue
    names.append(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
        names.append(info.name)
import workers.tasks  # what a producer reaches through the Celery app's task list
heavy = sorted(m for m in ("tensorflow", "keras", "cv2", "onnxruntime") if m in sys.modules)
print(len(names), heavy)
assert not heavy, heavy
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """`code` run by a fresh interpreter in the repository, so sys.modules starts empty."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_producers_do_not_load_tensorflow_opencv_or_onnxruntime():
    done = _python(PROBE)
    assert done.returncode == 0, done.stdout + done.stderr
    count = int(done.stdout.split()[0])
    assert count >= 10, done.stdout  # the walk really imported the producer modules


# The NST task checks every job with the planning module before the engine is built: a good job
# loads and passes, a content too small for the layers fails alone, and neither loads TensorFlow.
NST_VALIDATION = """
import io, sys, tempfile
from pathlib import Path
from PIL import Image
from atelier.errors import InputError
from atelier.models import Job
from atelier.schemas import NSTParams
from atelier.settings import Settings
from atelier.storage import open_storage
from workers.tasks import nst
from workers.tasks.runner import JobContext

settings = Settings(data_dir=Path(tempfile.mkdtemp()))
storage = open_storage(settings)

def put(width, height):
    data = io.BytesIO()
    Image.new("RGB", (width, height), (90, 140, 200)).save(data, "PNG")
    return storage.put_bytes(data.getvalue()).sha256

style = put(48, 48)
params = NSTParams(size=64, iterations=2)

def load(content):
    job = Job(inputs={"content": content, "styles": [style]}, params=params.model_dump())
    ctx = JobContext(task=None, lease=None, job=job, settings=settings, storage=storage)
    return nst._load(ctx, params, settings)

loaded = load(put(64, 48))
assert loaded.content.shape == (48, 64, 3), loaded.content.shape
try:
    load(put(640, 8))
except InputError as error:
    print("refused:", error)
else:
    raise AssertionError("a 640x8 content was accepted at size 64")
heavy = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
print("heavy:", heavy)
assert not heavy, heavy
"""


def test_the_nst_task_validates_jobs_without_loading_tensorflow():
    done = _python(NST_VALIDATION)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "refused: the content image becomes 64x1" in done.stdout, done.stdout
    assert "heavy: []" in done.stdout, done.stdout


# Importing TensorFlow holds the interpreter for seconds; the NST task does it before it claims,
# so the lease keeper of a claimed job is never stalled by it: a message whose jobs cannot be
# claimed (here none exists) still loads it.
NST_BEFORE_CLAIM = """
import os, sys, tempfile
os.environ["ATELIER_DATA_DIR"] = tempfile.mkdtemp()
os.environ["ATELIER_VGG_WEIGHTS"] = "none"
from atelier.db import migrate
from atelier.settings import get_settings
from workers.tasks import nst
migrate(get_settings().resolved_database_url)
print("before:", "tensorflow" in sys.modules)
print("result:", nst.stylize([987654]))
print("after:", "tensorflow" in sys.modules)
"""


def test_the_nst_task_loads_tensorflow_before_it_claims():
    done = _python(NST_BEFORE_CLAIM)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "before: False" in done.stdout and "result: {'claimed': []}" in done.stdout, done.stdout
    assert "after: True" in done.stdout, done.stdout
