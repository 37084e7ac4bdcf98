"""The embedded broker never shows a reader a message file that is not completely written."""

from __future__ import annotations

from pathlib import Path

import pytest
from kombu.transport import filesystem

from atelier import fs_broker
from atelier.celery_app import PING, create_app
from atelier.settings import Settings


def test_a_message_file_appears_only_when_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    settings = Settings(data_dir=tmp_path)
    queue_folder = settings.broker_folder / "queue"
    seen_while_writing: list[list[str]] = []

    def spying(dumps):
        def dump(payload):
            # What a worker polling the folder could take while this message is being written.
            seen_while_writing.append(sorted(p.name for p in queue_folder.glob("*.msg")))
            return dumps(payload)

        return dump

    monkeypatch.setattr(filesystem, "dumps", spying(filesystem.dumps))
    monkeypatch.setattr(fs_broker, "dumps", spying(fs_broker.dumps))
    app = create_app(settings)
    app.send_task(PING, args=[[1]])
    assert seen_while_writing and not any(seen_while_writing)  # nothing visible mid-write
    messages = list(queue_folder.glob("*.msg"))
    assert messages and all(m.read_bytes().startswith(b"{") for m in messages)
    assert not list(queue_folder.glob("*.part"))
