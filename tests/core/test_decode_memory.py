"""Images decode at the size a job needs: a small file declaring a huge image costs little."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.support.procs import REPO

MEASURE = """
import json, resource, sys
from pathlib import Path
from atelier.media import load_rgb
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
image = load_rgb(Path(sys.argv[1]), 64_000_000, int(sys.argv[2]))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"shape": image.shape, "grew_mb": (peak - before) / 1024}))
"""


def _load_in_a_fresh_process(path: Path, longest: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), str(longest)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def test_a_tiny_jpeg_declaring_7999_squared_decodes_small_for_a_32px_job(tmp_path: Path):
    path = tmp_path / "huge.jpg"
    Image.new("L", (7999, 7999), 128).save(path, quality=10)  # a flat grey: a small file
    assert path.stat().st_size < 1_000_000
    got = _load_in_a_fresh_process(path, 32)
    # Full size as float32 RGB would be 768 MB (plus the decode); 1/8 scale is 12 MB.
    assert got["grew_mb"] < 60, got
    assert 32 <= max(got["shape"][:2]) <= 1000 and got["shape"][2] == 3


def test_other_formats_are_reduced_before_the_float_conversion(tmp_path: Path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (4000, 1000), (10, 200, 30)).save(path)
    got = _load_in_a_fresh_process(path, 1000)
    # The decoded 12 MB stay, the 48 MB float32 copy of the full image is never made.
    assert got["grew_mb"] < 30, got
    assert got["shape"] == [250, 1000, 3]
