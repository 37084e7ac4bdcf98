"""Content-addressed storage: one copy per content, only complete files, no user paths."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from atelier.errors import InputError
from atelier.storage import Storage


def test_same_content_is_stored_once(tmp_path: Path):
    storage = Storage(tmp_path)
    first = storage.put_bytes(b"painting")
    second = storage.put_stream(io.BytesIO(b"painting"))
    assert first == second
    assert first.sha256 == hashlib.sha256(b"painting").hexdigest()
    assert first.path.read_bytes() == b"painting"
    assert [p for p in storage.objects.rglob("*") if p.is_file()] == [first.path]


def test_oversize_stream_is_refused_and_leaves_nothing(tmp_path: Path):
    storage = Storage(tmp_path)
    with pytest.raises(InputError, match="larger than the limit"):
        storage.put_stream(io.BytesIO(b"x" * 5000), max_bytes=4096)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_interrupted_write_leaves_no_partial_object(tmp_path: Path):
    class Broken(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def read(self, n: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise OSError("connection reset")
            return b"y" * 1024

    storage = Storage(tmp_path)
    with pytest.raises(OSError, match="connection reset"):
        storage.put_stream(Broken())
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("name", ["../../etc/passwd", "a" * 63, "A" * 64, "/abs", "x/../y"])
def test_paths_are_never_built_from_names(tmp_path: Path, name: str):
    with pytest.raises(InputError, match="not a sha256"):
        Storage(tmp_path).path(name)


def test_adopt_moves_a_produced_file_into_place(tmp_path: Path):
    storage = Storage(tmp_path)
    with storage.scratch("job-1") as work:
        produced = work / "out.png"
        produced.write_bytes(b"result")
        stored = storage.adopt(produced)
        assert not produced.exists()
    assert stored.path.read_bytes() == b"result"
    assert not any(storage.tmp.iterdir())
