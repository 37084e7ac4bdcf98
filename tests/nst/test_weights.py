"""Where VGG19 weights come from, and how a worker without them fails: fast, with instructions."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from atelier.errors import WeightsUnavailable
from workers.nst import vgg


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras" / "models"


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers: a download must not wait forever."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/{vgg.WEIGHTS_FILE}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{vgg.WEIGHTS_FILE}"


def _assert_instructions(message: str, cache: Path) -> None:
    assert "ATELIER_VGG_WEIGHTS=/path/to/" in message
    assert str(cache) in message
    assert "ATELIER_VGG_WEIGHTS=none" in message


def test_imagenet_with_no_cache_and_no_network_says_how_to_provide_them(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(vgg, "WEIGHTS_URL", _closed_port_url())
    with pytest.raises(WeightsUnavailable) as raised:
        vgg.resolve_weights("imagenet")
    _assert_instructions(str(raised.value), empty_cache)
    assert list(empty_cache.iterdir()) == []  # no partial download left to be mistaken for one


@pytest.mark.timeout(30)
def test_a_download_that_stalls_gives_up(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch, silent_server: str
):
    monkeypatch.setattr(vgg, "WEIGHTS_URL", silent_server)
    monkeypatch.setattr(vgg, "DOWNLOAD_TIMEOUT_S", 1.0)
    with pytest.raises(WeightsUnavailable, match="could not be downloaded") as raised:
        vgg.resolve_weights("imagenet")
    _assert_instructions(str(raised.value), empty_cache)


def test_a_cached_file_is_used_without_any_download(
    empty_cache: Path, monkeypatch: pytest.MonkeyPatch
):
    empty_cache.mkdir(parents=True)
    (empty_cache / vgg.WEIGHTS_FILE).write_bytes(b"weights")
    monkeypatch.setattr(vgg, "WEIGHTS_URL", _closed_port_url())
    assert vgg.resolve_weights("imagenet") == str(empty_cache / vgg.WEIGHTS_FILE)


def test_a_missing_or_broken_weights_file_is_named(tmp_path: Path, empty_cache: Path):
    missing = tmp_path / "nowhere.h5"
    with pytest.raises(WeightsUnavailable, match="does not exist") as raised:
        vgg.resolve_weights(str(missing))
    assert str(missing) in str(raised.value)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not an HDF5 file")
    with pytest.raises(WeightsUnavailable, match="cannot load VGG19 weights") as raised:
        vgg.build_extractor(str(broken), "block5_conv2", ("block1_conv1",))
    _assert_instructions(str(raised.value), empty_cache)


def test_none_means_random_weights(empty_cache: Path):
    assert vgg.resolve_weights("none") is None
    assert vgg.resolve_weights(" None ") is None
