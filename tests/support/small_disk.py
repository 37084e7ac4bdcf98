"""A real full disk for a process, without privileges: the process runs in a user and mount
namespace of its own (`unshare --user --map-root-user --mount`) with a small tmpfs mounted over one
of its folders. Writes there fail with a real `ENOSPC` once it is full; this process reaches the
tmpfs through the other's `/proc/<pid>/root` (to fill or free it)."""

from __future__ import annotations

import errno
import shutil
import subprocess
from pathlib import Path


def namespaces_work(folder: Path) -> bool:
    """Whether this machine lets an unprivileged user mount a tmpfs in a namespace of its own
    (`folder`: an empty folder to try it on)."""
    if shutil.which("unshare") is None:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", "size=1m", "probe", str(folder)]
    probe = ["unshare", "--user", "--map-root-user", "--mount", *mount]
    return subprocess.run(probe, check=False, capture_output=True).returncode == 0


def on_small_disk(folder: Path, mb: int, spare: Path, full: bool = False) -> list[str]:
    """A command prefix that runs a command with a tmpfs of `mb` MiB over `folder`, holding a
    copy of what `folder` held (mounted first on `spare`, an empty folder); `full`: filled up
    before the command starts."""
    fill = ' && { cat /dev/zero > "$1/filler" 2>/dev/null; true; }' if full else ""
    script = (
        f'mount -t tmpfs -o size={mb}m atelier-disk "$1" && cp -a "$0/." "$1"{fill}'
        ' && mount --bind "$1" "$0" && shift && exec "$@"'
    )
    spare.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    namespace = ["unshare", "--user", "--map-root-user", "--mount"]
    return [*namespace, "sh", "-c", script, str(folder), str(spare)]


def fill(folder: Path) -> Path:
    """Write zeros into `folder` until its filesystem is full (a real ENOSPC); returns the file
    (delete it to free the disk)."""
    filler = folder / "filler"
    block = bytes(1 << 20)
    with filler.open("wb") as out:
        try:
            while True:
                out.write(block)
                out.flush()
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    return filler
