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


def test_producers_do_not_load_tensorflow_opencv_or_onnxruntime():
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    count = int(done.stdout.split()[0])
    assert count >= 10, done.stdout  # the walk really imported the producer modules
