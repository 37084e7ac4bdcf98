"""An inbox whose parameters say `engine: fast` sends its batches to the CPU queue `fast`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import redis
from PIL import Image

from atelier.celery_app import FAST_STYLIZE
from scheduler import inboxes as inbox_module
from scheduler.broker import job_ids_in
from scheduler.inboxes import scan_inboxes


def _image(path: Path, color: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 20), color).save(path)
    old = os.stat(path).st_mtime - 10
    os.utime(path, (old, old))
    return path


def test_a_fast_inbox_sends_to_the_fast_queue(tmp_path: Path, redis_runtime, redis_url: str):
    inbox = tmp_path / "inbox"
    style = _image(tmp_path / "styles" / "wave.png", (0, 0, 200))
    _image(inbox / "a.png", (200, 0, 0))
    spec = {
        "folder": str(inbox),
        "styles": [str(style)],
        "params": {"engine": "fast", "size": 512},
        "settle_seconds": 1,
    }
    settings, app = redis_runtime(inboxes=json.dumps({"scans": spec}))
    inbox_module._known.clear()
    try:
        [report] = scan_inboxes(settings, app)
    finally:
        inbox_module._known.clear()
    client = redis.Redis.from_url(redis_url)
    payloads = [json.loads(raw) for raw in client.lrange("fast", 0, -1)]
    assert [(p["headers"]["task"], job_ids_in(p)) for p in payloads] == [
        (FAST_STYLIZE, report.job_ids)
    ]
    assert client.llen("nst") == 0
